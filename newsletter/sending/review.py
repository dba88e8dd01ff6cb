"""What an admin confirms before a campaign starts: the review step.

Sending is the one thing that cannot be taken back, so before any campaign
starts (now or at a scheduled time) the admin sees what goes to whom: the
subject and preheader, the audience and how many subscribers it is today, the
preflight result, the last test send, and whether this issue already went to
part of this audience.  ``blockers`` are reasons the send must not go ahead at
all; a duplicate needs an explicit "send again".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.issues.preflight import inspect
from newsletter.message import RenderedEmail
from newsletter.models.issues import Issue, IssueStatus
from newsletter.models.sending import Campaign, TestSend
from newsletter.resources.links import warnings_for
from newsletter.sending import campaigns
from newsletter.sending.freeze import count_audience


@dataclass
class Review:
    issue: Issue
    topics: list[str]
    audience: str
    recipients: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last_test: TestSend | None = None
    earlier: Campaign | None = None
    earlier_text: str = ""

    @property
    def blockers(self) -> list[str]:
        """Why this campaign cannot start at all (preflight, a draft issue, nobody to send to)."""
        found = list(self.problems)
        if self.issue.status == IssueStatus.DRAFT:
            found.insert(0, f"issue {self.issue.number} is a draft: mark it ready in the editor")
        if self.issue.status == IssueStatus.ARCHIVED:
            found.insert(0, f"issue {self.issue.number} is archived")
        if self.recipients == 0:
            found.append("nobody in this audience can be sent to today")
        return found

    @property
    def duplicate(self) -> bool:
        return self.earlier is not None


def last_test_send(issue_id: int, *, session: Session) -> TestSend | None:
    return session.scalar(
        select(TestSend)
        .where(TestSend.issue_id == issue_id)
        .order_by(TestSend.sent_at.desc(), TestSend.id.desc())
        .limit(1)
    )


def review(
    issue: Issue,
    topics: Sequence[str],
    rendered: RenderedEmail,
    *,
    session: Session,
    now: datetime,
    exclude: int | None = None,
) -> Review:
    """The review of sending ``issue`` (rendered for everyone) to ``topics``' subscribers."""
    report = inspect(rendered, links=lambda hrefs: warnings_for(hrefs, session=session))
    earlier = campaigns.earlier_send(issue.id, topics, session=session, exclude=exclude)
    return Review(
        issue=issue,
        topics=sorted(topics),
        audience=campaigns.audience_label(topics),
        recipients=count_audience(topics, session=session, now=now),
        problems=report.problems,
        warnings=report.warnings,
        last_test=last_test_send(issue.id, session=session),
        earlier=earlier,
        earlier_text=campaigns.describe_earlier(earlier) if earlier else "",
    )
