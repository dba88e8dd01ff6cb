"""A library that remembers: where each resource was featured and how readers took it.

"Featured" means an item of an issue references the resource (draft issues
included: the editor sees what is planned too); lifetime numbers come only
from campaigns that went out.  A resource's lifetime click-through rate is its
unique human clickers summed over every campaign that carried it, over the
recipients those campaigns reached: a reader who clicked it in two campaigns
counts in both, as each campaign is a separate chance to click.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import case, distinct, func, literal, select
from sqlalchemy.orm import Session

from newsletter.insights.results import reached_by_campaign
from newsletter.models import (
    Campaign,
    Issue,
    IssueItem,
    IssueLink,
    IssueSection,
    Resource,
    ResourceClick,
)
from newsletter.models.sending import TrackingEvent

RECENT_ISSUES = 3
FEATURED_FILTERS = {
    "never": "never featured",
    "recent": f"featured in the last {RECENT_ISSUES} issues",
}
HEALTH_FILTERS = {"dead": "dead link", "moved": "moved link"}


@dataclass(frozen=True)
class Featured:
    number: int
    title: str
    issue_date: date
    state: str

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "title": self.title,
                "date": self.issue_date.isoformat(), "state": self.state}  # fmt: skip


@dataclass
class Lifetime:
    clickers: int = 0
    clicks: int = 0
    machine_clicks: int = 0
    delivered: int = 0
    campaigns: set[int] = field(default_factory=set)

    @property
    def ctr(self) -> float:
        return round(self.clickers / self.delivered, 4) if self.delivered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"unique_clickers": self.clickers, "clicks": self.clicks,
                "machine_clicks": self.machine_clicks, "delivered": self.delivered,
                "ctr": self.ctr, "campaigns": sorted(self.campaigns)}  # fmt: skip


def featured_in(session: Session, resource_ids: Iterable[int]) -> dict[int, list[Featured]]:
    """Each resource's issues, newest first."""
    ids = list(resource_ids)
    found: dict[int, list[Featured]] = defaultdict(list)
    if not ids:
        return found
    rows = session.execute(
        select(IssueItem.resource_id, Issue)
        .join(IssueSection, IssueSection.id == IssueItem.section_id)
        .join(Issue, Issue.id == IssueSection.issue_id)
        .where(IssueItem.resource_id.in_(ids))
        .order_by(Issue.number.desc())
    ).tuples()
    for rid, issue in rows:
        entries = found[int(rid or 0)]
        if not entries or entries[-1].number != issue.number:
            entries.append(Featured(issue.number, issue.title, issue.issue_date, issue.state))
    return found


def recent_issue_numbers(session: Session, count: int = RECENT_ISSUES) -> list[int]:
    return list(session.scalars(select(Issue.number).order_by(Issue.number.desc()).limit(count)))


def lifetime(session: Session, resource_ids: Iterable[int] | None = None) -> dict[int, Lifetime]:
    """Lifetime clicks and click-through rate per resource (all resources if ``None``)."""
    pairs = _carried(session, resource_ids)  # (resource, campaign)
    campaigns = sorted({cid for _rid, cid in pairs})
    reached = reached_by_campaign(session, campaigns)
    found: dict[int, Lifetime] = defaultdict(Lifetime)
    for rid, cid in pairs:
        entry = found[rid]
        entry.campaigns.add(cid)
        entry.delivered += reached.get(cid, 0)
    wanted = None if resource_ids is None else set(found)
    for rid, _cid, clickers, clicks, machine in _clicks(session, campaigns, wanted):
        entry = found[int(rid)]
        entry.clickers += int(clickers or 0)
        entry.clicks += int(clicks or 0)
        entry.machine_clicks += int(machine or 0)
    return dict(found)


def _carried(session: Session, resource_ids: Iterable[int] | None) -> list[tuple[int, int]]:
    """(resource, campaign) for every started campaign whose issue links to the resource."""
    query = (
        select(distinct(IssueLink.resource_id), Campaign.id)
        .join(Campaign, Campaign.issue_id == IssueLink.issue_id)
        .where(IssueLink.resource_id.is_not(None), Campaign.started_at.is_not(None))
    )
    if resource_ids is not None:
        query = query.where(IssueLink.resource_id.in_(list(resource_ids)))
    return [(int(r or 0), int(c)) for r, c in session.execute(query).tuples()]


def _clicks(
    session: Session, campaigns: Sequence[int], wanted: set[int] | None
) -> Iterable[tuple[Any, ...]]:
    if not campaigns:
        return []
    r = ResourceClick
    first_party = (
        select(r.resource_id, r.campaign_id, func.sum(case((r.human > 0, 1), else_=0)),
               func.sum(r.human), func.sum(r.machine))
        .where(r.campaign_id.in_(campaigns))
        .group_by(r.resource_id, r.campaign_id)
    )  # fmt: skip
    sendgrid = (
        select(IssueLink.resource_id, TrackingEvent.campaign_id,
               func.count(distinct(TrackingEvent.delivery_id)), func.count(), literal(0))
        .join(Campaign, Campaign.id == TrackingEvent.campaign_id)
        .join(IssueLink, (IssueLink.issue_id == Campaign.issue_id)
              & (IssueLink.url == TrackingEvent.detail) & (IssueLink.occurrence == 0))
        .where(TrackingEvent.campaign_id.in_(campaigns), TrackingEvent.event == "click",
               Campaign.transport == "sendgrid", IssueLink.resource_id.is_not(None))
        .group_by(IssueLink.resource_id, TrackingEvent.campaign_id)
    )  # fmt: skip
    rows = [*session.execute(first_party).tuples(), *session.execute(sendgrid).tuples()]
    return [row for row in rows if wanted is None or int(row[0]) in wanted]


@dataclass(frozen=True)
class LibraryFilter:
    featured: str = ""  # "", "never", "recent"
    health: str = ""  # "", "dead", "moved"
    sort: str = ""  # "", "ctr"


def narrow(
    session: Session, rows: Sequence[Resource], wanted: LibraryFilter
) -> tuple[list[Resource], dict[int, Lifetime], dict[int, list[Featured]]]:
    """The resources the filter keeps, in its order, with their history for the page."""
    ids = [r.id for r in rows]
    history = featured_in(session, ids)
    kept = list(rows)
    if wanted.featured == "never":
        kept = [r for r in kept if not history.get(r.id)]
    elif wanted.featured == "recent":
        recent = set(recent_issue_numbers(session))
        kept = [r for r in kept if any(f.number in recent for f in history.get(r.id, []))]
    if wanted.health in HEALTH_FILTERS:
        kept = [r for r in kept if r.link_status == wanted.health]
    numbers = lifetime(session, [r.id for r in kept]) if kept else {}
    if wanted.sort == "ctr":
        kept.sort(key=lambda r: (-(numbers[r.id].ctr if r.id in numbers else -1.0), r.id))
    return kept, numbers, history
