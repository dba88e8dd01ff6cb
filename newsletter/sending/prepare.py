"""From a claimed batch to a ``MessageBatch``: one render per segment, cheap values per recipient.

This is the service layer between the engine and the rest of the package: it
may read the database (once per issue, cached), render (once per issue and
segment, cached) and sign links (once per recipient, a few microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import PreflightError
from newsletter.message import Template
from newsletter.render import IssueContent, Renderer, render_issue, render_web_version
from newsletter.sending.types import Addressee, ClaimedBatch
from newsletter.subscribers.tokens import Purpose, tokens_for
from newsletter.transports.base import MessageBatch, Recipient, Sender


class _Bearer(NamedTuple):
    id: int
    email_hash: str


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

    def values(self, addressee: Addressee, issue: IssueContent) -> dict[str, str]:
        tokens = tokens_for(self.settings)
        bearer = _Bearer(addressee.subscriber_id, addressee.email_hash)
        base = self.settings.base_url.rstrip("/")
        return {
            "name": addressee.name or "",
            "email": addressee.email,
            "unsubscribe_url": f"{base}/u/{tokens.make(Purpose.UNSUBSCRIBE, bearer)}",
            "preferences_url": f"{base}/preferences/{tokens.make(Purpose.PREFERENCES, bearer)}",
            "web_url": web_url(self.settings, issue),
        }

    def __call__(self, batch: ClaimedBatch) -> MessageBatch:
        issue = self.content(batch.issue_id)
        recipients = [
            Recipient(ref=str(a.delivery_id), email=a.email, values=self.values(a, issue))
            for a in batch.recipients
        ]
        return MessageBatch(
            template=self.template(batch.issue_id, batch.segment),
            sender=self.sender,
            recipients=recipients,
            custom_args={"campaign_id": str(batch.campaign_id)},
        )
