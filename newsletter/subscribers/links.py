"""Absolute URLs for the links in emails, on ``settings.base_url``.

The sender calls these once per recipient, so they only concatenate strings
around a cached signer (see ``tokens``).  The paths are the web app's routes.
"""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.subscribers.tokens import Purpose, TokenBearer, tokens_for

CONFIRM_PATH = "/confirm/"
UNSUBSCRIBE_PATH = "/u/"  # the List-Unsubscribe / RFC 8058 one-click URL
PREFERENCES_PATH = "/preferences/"
# Test sends and previews carry these instead of a subscriber's links: real pages that say
# the message was a test (and a one-click POST that answers 200 and changes nothing).
TEST_UNSUBSCRIBE_PATH = "/test/unsubscribe"
TEST_PREFERENCES_PATH = "/test/preferences"


def test_links(base_url: str) -> dict[str, str]:
    """The unsubscribe and preferences values of a test send or a preview."""
    base = base_url.rstrip("/")
    return {
        "unsubscribe_url": base + TEST_UNSUBSCRIBE_PATH,
        "preferences_url": base + TEST_PREFERENCES_PATH,
    }


def _url(settings: Settings, path: str, purpose: Purpose, subscriber: TokenBearer) -> str:
    return settings.base_url.rstrip("/") + path + tokens_for(settings).make(purpose, subscriber)


def confirm_url(settings: Settings, subscriber: TokenBearer) -> str:
    """The double opt-in link (expires after ``confirm_token_max_age_days``)."""
    return _url(settings, CONFIRM_PATH, Purpose.CONFIRM, subscriber)


def unsubscribe_url(settings: Settings, subscriber: TokenBearer) -> str:
    """The one-click unsubscribe link for ``List-Unsubscribe`` and the footer (never expires)."""
    return _url(settings, UNSUBSCRIBE_PATH, Purpose.UNSUBSCRIBE, subscriber)


def preferences_url(settings: Settings, subscriber: TokenBearer) -> str:
    """The preference-centre link (never expires)."""
    return _url(settings, PREFERENCES_PATH, Purpose.PREFERENCES, subscriber)
