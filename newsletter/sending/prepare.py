"""From a claimed batch to a ``MessageBatch``: one render per segment, cheap values per recipient.

This is the service layer between the engine and the rest of the package: it
may read the database (once per issue, cached), render (once per issue and
segment, cached) and sign links (once per recipient, a few microseconds).
"""

from __future__ import annotations

import hmac
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from itsdangerous import URLSafeSerializer

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import PreflightError
from newsletter.message import Template
from newsletter.render import IssueContent, Renderer, render_issue, render_web_version
from newsletter.sending.types import Addressee, ClaimedBatch
from newsletter.subscribers.tokens import HASH_PREFIX, Purpose, Tokens, tokens_for
from newsletter.transports.base import MessageBatch, Recipient, Sender


class _Bearer(NamedTuple):
    id: int
    email_hash: str


_Values = Callable[[Addressee], dict[str, str]]


class _LinkTokens:
    """``Tokens.make`` for one purpose, byte for byte, at a fraction of the cost.

    A token is stock itsdangerous ``URLSafeSerializer`` output:
    ``b64(json([id, hash prefix])) "." b64(HMAC(derived key, that))``.  Here the
    JSON is formatted directly (an int and a plain hex string need no escaping)
    and the HMAC is copied from a pre-keyed prototype, instead of going through
    the serializer's layers for each of a million recipients.  It proves
    itself against ``Tokens.make`` on a probe when built; a bearer it cannot
    format exactly, or a failed probe, goes through ``Tokens.make``.
    """

    def __init__(self, tokens: Tokens, secret: str, purpose: Purpose) -> None:
        self.tokens = tokens
        self.purpose = purpose
        signer = URLSafeSerializer(secret, salt=f"newsletter.{purpose}").make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep = signer.sep
        probe = _Bearer(2**40 + 7, "0123456789abcdef" * 4)
        self.fast = self._format(probe.id, probe.email_hash[:HASH_PREFIX]) == tokens.make(
            purpose, probe
        )

    def make(self, subscriber_id: int, email_hash: str) -> str:
        prefix = email_hash[:HASH_PREFIX]
        if self.fast and type(subscriber_id) is int and prefix.isascii() and prefix.isalnum():
            return self._format(subscriber_id, prefix)
        return self.tokens.make(self.purpose, _Bearer(subscriber_id, email_hash))

    def _format(self, subscriber_id: int, prefix: str) -> str:
        payload = urlsafe_b64encode(f'[{subscriber_id},"{prefix}"]'.encode()).rstrip(b"=")
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode()


def web_url(settings: Settings, issue: IssueContent) -> str:
    return f"{settings.base_url.rstrip('/')}/archive/{issue.number}"


def issue_topics(issue: IssueContent) -> list[str]:
    """Every topic a section could be chosen by: the segment universe for this issue."""
    names = {t for s in issue.sections for t in s.topics}
    names |= {t for item in issue.items for t in item.topics}
    return sorted(names)


@dataclass
class IssuePreparer:
    """Implements ``campaigns.IssueChecks`` and the engine's ``Preparer``."""

    db: Database
    settings: Settings
    sender: Sender
    renderer: Renderer = field(default_factory=Renderer)
    _content: dict[int, IssueContent] = field(default_factory=dict)
    _templates: dict[tuple[int, frozenset[str]], Template] = field(default_factory=dict)
    _links: dict[Purpose, _LinkTokens] = field(default_factory=dict)

    def content(self, issue_id: int) -> IssueContent:
        if issue_id not in self._content:
            from newsletter.issues.store import content_for_id

            with self.db.session() as session:
                self._content[issue_id] = content_for_id(issue_id, session=session)
        return self._content[issue_id]

    # --- IssueChecks ------------------------------------------------------------

    def topic_universe(self, issue_id: int) -> list[str]:
        return issue_topics(self.content(issue_id))

    def preflight(self, issue_id: int) -> None:
        from newsletter.issues.preflight import preflight

        rendered = render_issue(
            self.content(issue_id), None, theme=self.settings, renderer=self.renderer
        )
        problems = preflight(rendered)
        if problems:
            raise PreflightError(problems, where=f"issue {self.content(issue_id).number}")

    # --- Preparer ---------------------------------------------------------------

    def template(self, issue_id: int, segment: frozenset[str]) -> Template:
        key = (issue_id, segment)
        if key not in self._templates:
            rendered = render_issue(
                self.content(issue_id), segment or None, theme=self.settings, renderer=self.renderer
            )
            self._templates[key] = Template.compile(rendered)
        return self._templates[key]

    def web_version(self, issue_id: int) -> str:
        return render_web_version(
            self.content(issue_id), theme=self.settings, renderer=self.renderer
        )

    def _link(self, purpose: Purpose) -> _LinkTokens:
        if purpose not in self._links:
            secret = self.settings.keyring.current
            self._links[purpose] = _LinkTokens(tokens_for(self.settings), secret, purpose)
        return self._links[purpose]

    def values(self, addressee: Addressee, issue: IssueContent) -> dict[str, str]:
        return self._values_for(issue)(addressee)

    def _values_for(self, issue: IssueContent) -> _Values:
        """The per-recipient values function for one issue, its constant parts worked out once."""
        base = self.settings.base_url.rstrip("/")
        web = web_url(self.settings, issue)
        unsubscribe = self._link(Purpose.UNSUBSCRIBE).make
        preferences = self._link(Purpose.PREFERENCES).make

        def values(a: Addressee) -> dict[str, str]:
            return {
                "name": a.name or "",
                "email": a.email,
                "unsubscribe_url": f"{base}/u/{unsubscribe(a.subscriber_id, a.email_hash)}",
                "preferences_url": (
                    f"{base}/preferences/{preferences(a.subscriber_id, a.email_hash)}"
                ),
                "web_url": web,
            }

        return values

    def __call__(self, batch: ClaimedBatch) -> MessageBatch:
        values = self._values_for(self.content(batch.issue_id))
        recipients = [
            Recipient(ref=str(a.delivery_id), email=a.email, values=values(a))
            for a in batch.recipients
        ]
        return MessageBatch(
            template=self.template(batch.issue_id, batch.segment),
            sender=self.sender,
            recipients=recipients,
            custom_args={"campaign_id": str(batch.campaign_id)},
        )
