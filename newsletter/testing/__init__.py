"""Test doubles and sample data shared by the test suite and the benchmarks.

Nothing in the production code imports this package.  The fakes live in
submodules so importing the sample data does not pull in test-only
dependencies: ``newsletter.testing.fake_sendgrid`` (stdlib only) and
``newsletter.testing.smtp_sink`` (needs ``aiosmtpd``).
"""

from __future__ import annotations

from collections.abc import Mapping

from newsletter.message import RenderedEmail, Template, placeholder
from newsletter.transports.base import MessageBatch, Recipient, Sender

SAMPLE_SENDER = Sender(
    email="newsletter@example.org", name="KnowledgeWorks Newsletter", reply_to="editor@example.org"
)
ONE_CLICK = "List-Unsubscribe=One-Click"


def sample_email(
    *, long_line: int = 0, extra_headers: Mapping[str, str] | None = None
) -> RenderedEmail:
    """A rendered issue using every placeholder the way the MJML templates do.

    ``long_line`` appends one HTML line of that many characters, like MJML's
    minified output, to prove the transports never emit lines over 998 bytes.
    """
    html = (
        "<html><body>"
        f"<p>Hello {placeholder('name', html=True)},</p>"
        "<p>Issue 42: April 2018 &mdash; caf\u00e9 edition.</p>"
        f'<a href="{placeholder("web_url", html=True)}">web version</a> '
        f'<a href="{placeholder("preferences_url", html=True)}">preferences</a> '
        f'<a href="{placeholder("unsubscribe_url", html=True)}">unsubscribe</a>'
        "</body></html>"
    )
    if long_line:
        html += "\n<div>" + ("x" * long_line) + "</div>"
    text = (
        f"Hello {placeholder('name')},\n\nIssue 42: April 2018 \u2014 caf\u00e9 edition.\n"
        ".a line that starts with a dot\n\n"
        f"Unsubscribe: {placeholder('unsubscribe_url')}\n"
    )
    headers = {
        "List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>",
        "List-Unsubscribe-Post": ONE_CLICK,
        "List-Id": "KnowledgeWorks Newsletter <newsletter.example.org>",
        **(extra_headers or {}),
    }
    return RenderedEmail(
        subject=f"Issue 42 for {placeholder('name')}", html=html, text=text, headers=headers
    )


def sample_recipient(
    index: int, *, domain: str = "example.org", name: str | None = None
) -> Recipient:
    """Recipient ``index`` with a ledger ref and per-recipient URLs that name it."""
    token = f"tok{index:06d}"
    return Recipient(
        ref=f"L{index}",
        email=f"user{index}@{domain}",
        values={
            "name": f"Reader {index}" if name is None else name,
            "unsubscribe_url": f"https://news.example.org/u/{token}",
            "preferences_url": f"https://news.example.org/p/{token}",
            "web_url": "https://news.example.org/issues/42",
        },
    )


def sample_batch(
    count: int,
    *,
    domain: str = "example.org",
    email: RenderedEmail | None = None,
    recipients: list[Recipient] | None = None,
    sender: Sender = SAMPLE_SENDER,
    campaign_id: str = "7",
) -> MessageBatch:
    """A batch of ``count`` sample recipients (or the given ones) for one template."""
    people = (
        recipients
        if recipients is not None
        else [sample_recipient(i, domain=domain) for i in range(count)]
    )
    return MessageBatch(
        template=Template.compile(email or sample_email()),
        sender=sender,
        recipients=people,
        custom_args={"campaign_id": campaign_id},
    )
