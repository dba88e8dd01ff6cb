"""Issue results: every link and resource of a campaign (or of all an issue's campaigns).

For each link and each library resource in an issue: unique human clickers,
human clicks, the click-through rate (unique clickers over recipients reached),
machine clicks apart, and the same per topic segment.  A recipient's segment
is the one frozen on their ledger row when the audience was frozen (the
issue's topics they had chosen), so a topic's numbers describe who got the
issue, not who holds the topic today; "(no topic chosen)" are the readers of
the whole issue.

First-party clicks come from ``link_clicks`` and ``resource_clicks`` (one
row per link, or resource, and recipient, with the recipient's segment).
For a campaign sent through SendGrid, SendGrid's own click events
(``tracking_events``) count as well where their URL is one of the issue's
links (the first link with that URL takes them): those are clicks on links
first-party tracking did not rewrite (tracking off, or the reader opted out),
so nothing is counted twice.  SendGrid cannot tell machines from people, so
its clicks all count as human.

Every number is a grouped query (a handful per report, none per recipient):
see ``bench/insights.py`` for a 1M-recipient campaign.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError
from newsletter.models import (
    Campaign,
    Delivery,
    Issue,
    IssueLink,
    LinkClick,
    Resource,
    ResourceClick,
)
from newsletter.models.sending import TrackingEvent
from newsletter.sending.campaigns import reports_delivery
from newsletter.sending.segments import decode_segment

NO_TOPIC = "(no topic chosen)"
SORT_KEYS = ("position", "label", "clickers", "clicks", "ctr", "machine_clicks")
CSV_COLUMNS = ("kind", "position", "section", "label", "url", "resource_id", "topic",
               "delivered", "unique_clickers", "clicks", "ctr", "machine_clicks")  # fmt: skip


@dataclass
class Cell:
    """The numbers of one row for one slice of the audience."""

    delivered: int = 0
    clickers: int = 0
    clicks: int = 0
    machine_clicks: int = 0

    @property
    def ctr(self) -> float:
        return round(self.clickers / self.delivered, 4) if self.delivered else 0.0

    def add(self, clickers: int, clicks: int, machine: int) -> None:
        self.clickers += clickers
        self.clicks += clicks
        self.machine_clicks += machine

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered, "unique_clickers": self.clickers, "clicks": self.clicks,
            "ctr": self.ctr, "machine_clicks": self.machine_clicks,
        }  # fmt: skip


@dataclass
class Row:
    """One link (``kind`` "link") or one library resource (``kind`` "resource")."""

    kind: str
    label: str
    url: str | None
    position: int  # the link's position; a resource's first link's
    section: str | None
    resource_id: int | None
    total: Cell = field(default_factory=Cell)
    topics: dict[str, Cell] = field(default_factory=dict)

    @property
    def clickers(self) -> int:
        return self.total.clickers

    @property
    def clicks(self) -> int:
        return self.total.clicks

    @property
    def ctr(self) -> float:
        return self.total.ctr

    @property
    def machine_clicks(self) -> int:
        return self.total.machine_clicks

    def cell(self, topic: str) -> Cell:
        return self.topics.setdefault(topic, Cell())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "label": self.label, "url": self.url, "position": self.position,
            "section": self.section, "resource_id": self.resource_id, **self.total.as_dict(),
            "topics": {t: c.as_dict() for t, c in sorted(self.topics.items())},
        }  # fmt: skip


@dataclass
class IssueResults:
    issue_id: int
    issue_number: int
    issue_title: str
    campaign_ids: list[int]
    delivered: int
    topics: dict[str, int]  # recipients reached per topic segment
    links: list[Row]
    resources: list[Row]

    @property
    def human_clicks(self) -> int:
        return sum(row.clicks for row in self.links)

    def share(self, row: Row) -> float:
        """A link's share of all human clicks on the issue's links (for the click map)."""
        total = self.human_clicks
        return round(row.clicks / total, 4) if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.issue_number, "title": self.issue_title,
            "campaigns": self.campaign_ids, "delivered": self.delivered,
            "topics": dict(sorted(self.topics.items())),
            "links": [row.as_dict() for row in self.links],
            "resources": [row.as_dict() for row in self.resources],
        }  # fmt: skip

    def csv_rows(self) -> Iterable[dict[str, Any]]:
        """One row per (link or resource, audience slice): "all" then each topic."""
        for row in [*self.links, *self.resources]:
            slices = [("all", row.total), *sorted(row.topics.items())]
            for topic, cell in slices:
                yield {
                    "kind": row.kind, "position": row.position, "section": row.section or "",
                    "label": row.label, "url": row.url or "", "resource_id": row.resource_id or "",
                    "topic": topic, **cell.as_dict(),
                }  # fmt: skip

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.csv_rows())
        return out.getvalue()


def sort_rows(
    rows: Sequence[Row], key: str, *, descending: bool, topic: str | None = None
) -> list[Row]:
    """Rows ordered by one column of one slice (ties by position); unknown keys: position."""
    name = key if key in SORT_KEYS else "position"

    def value(row: Row) -> Any:
        if name in ("position", "label"):
            found = getattr(row, name)
            return found.casefold() if isinstance(found, str) else found
        cell = row.total if not topic else row.topics.get(topic, Cell())
        return getattr(cell, name)

    ordered = sorted(rows, key=lambda r: r.position)
    return sorted(ordered, key=value, reverse=descending)


# --- the queries ---------------------------------------------------------------------------


@dataclass
class _Audience:
    """Each campaign's topic universe and which delivery states count as reached."""

    universes: dict[int, list[str]]

    def topics(self, campaign_id: int, segment: str | None) -> list[str]:
        chosen = decode_segment(segment or "", self.universes.get(campaign_id, []))
        return sorted(chosen) if chosen else [NO_TOPIC]


def _campaigns(session: Session, campaign_id: int | None, issue_id: int | None) -> list[Campaign]:
    if campaign_id is not None:
        found = session.get(Campaign, campaign_id)
        if found is None:
            raise NotFoundError(f"no campaign #{campaign_id}")
        return [found]
    return list(session.scalars(select(Campaign).where(Campaign.issue_id == issue_id)
                                .order_by(Campaign.id)))  # fmt: skip


def _reached(
    session: Session, campaigns: Sequence[Campaign], audience: _Audience
) -> dict[str, int]:
    """Recipients reached per topic ("all" included).

    Delivered, or also accepted where the transport never reports deliveries,
    as the campaign report counts them.
    """
    ids = [c.id for c in campaigns]
    rows = session.execute(
        select(Delivery.campaign_id, Delivery.segment, Delivery.status, func.count())
        .where(Delivery.campaign_id.in_(ids))
        .group_by(Delivery.campaign_id, Delivery.segment, Delivery.status)
    ).all()
    by_campaign: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cid, _segment, status, count in rows:
        by_campaign[cid][status] += int(count)
    transports = {c.id: c.transport for c in campaigns}
    states = {
        cid: {"delivered"} if reports_delivery(transports[cid], counts) else {"delivered",
                                                                               "accepted"}
        for cid, counts in by_campaign.items()
    }  # fmt: skip
    reached: dict[str, int] = defaultdict(int)
    for cid, segment, status, count in rows:
        if status in states[cid]:
            reached["all"] += int(count)
            for topic in audience.topics(cid, segment):
                reached[topic] += int(count)
    return dict(reached)


def _first_party_links(session: Session, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """Per link and segment: one table, the segment copied there by the recorder."""
    human = func.sum(case((LinkClick.human > 0, 1), else_=0))
    return list(session.execute(
        select(LinkClick.campaign_id, LinkClick.link_id, LinkClick.segment, human,
               func.sum(LinkClick.human), func.sum(LinkClick.machine))
        .where(LinkClick.campaign_id.in_(ids))
        .group_by(LinkClick.campaign_id, LinkClick.link_id, LinkClick.segment)
    ).tuples())  # fmt: skip


def _first_party_resources(session: Session, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """Per resource and segment: any of its links (title, call to action) counts once."""
    human = func.sum(case((ResourceClick.human > 0, 1), else_=0))
    return list(session.execute(
        select(ResourceClick.campaign_id, ResourceClick.resource_id, ResourceClick.segment,
               human, func.sum(ResourceClick.human), func.sum(ResourceClick.machine))
        .where(ResourceClick.campaign_id.in_(ids))
        .group_by(ResourceClick.campaign_id, ResourceClick.resource_id, ResourceClick.segment)
    ).tuples())  # fmt: skip


def _sendgrid_clicks(session: Session, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """(campaign, URL, recipient, segment, clicks) of SendGrid's click events."""
    if not ids:
        return []
    return list(session.execute(
        select(TrackingEvent.campaign_id, TrackingEvent.detail, TrackingEvent.delivery_id,
               Delivery.segment, func.count())
        .join(Delivery, Delivery.id == TrackingEvent.delivery_id)
        .where(TrackingEvent.campaign_id.in_(ids), TrackingEvent.event == "click",
               TrackingEvent.detail.is_not(None))
        .group_by(TrackingEvent.campaign_id, TrackingEvent.detail, TrackingEvent.delivery_id,
                  Delivery.segment)
    ).tuples())  # fmt: skip


def _rows(
    session: Session, issue_id: int
) -> tuple[dict[int, Row], dict[int, Row], dict[int, int | None]]:
    """The issue's links and resources as empty rows, and each link's resource."""
    links = list(session.scalars(
        select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.position)
    ))  # fmt: skip
    ids = {link.resource_id for link in links if link.resource_id is not None}
    titles = dict(session.execute(select(Resource.id, Resource.title).where(Resource.id.in_(ids))
                                  ).tuples().all())  # fmt: skip
    by_link: dict[int, Row] = {}
    by_resource: dict[int, Row] = {}
    resource_of: dict[int, int | None] = {}
    for link in links:
        title = titles.get(link.resource_id) if link.resource_id is not None else None
        by_link[link.id] = Row("link", title or link.url, link.url, link.position,
                               link.section_heading, link.resource_id)  # fmt: skip
        resource_of[link.id] = link.resource_id
        if link.resource_id is not None and link.resource_id not in by_resource:
            by_resource[link.resource_id] = Row(
                "resource",
                title or link.url,
                link.url,
                link.position,
                link.section_heading,
                link.resource_id,
            )
    return by_link, by_resource, resource_of


def issue_results(
    session: Session, *, campaign_id: int | None = None, issue_id: int | None = None
) -> IssueResults:
    """Results of one campaign, or of every campaign of one issue (``issue_id``)."""
    campaigns = _campaigns(session, campaign_id, issue_id)
    if campaign_id is not None:
        issue_id = campaigns[0].issue_id
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFoundError(f"no issue #{issue_id}")
    ids = [c.id for c in campaigns]
    audience = _Audience({c.id: list(c.segment_topics or []) for c in campaigns})
    reached = _reached(session, campaigns, audience) if ids else {}
    topics = {t: n for t, n in reached.items() if t != "all"}
    by_link, by_resource, resource_of = _rows(session, issue.id)
    if ids:
        _add_first_party(session, ids, audience, by_link, by_resource)
        sendgrid = [c.id for c in campaigns if c.transport == "sendgrid"]
        _add_sendgrid(_sendgrid_clicks(session, sendgrid), audience, by_link, by_resource,
                      resource_of)  # fmt: skip
    for row in [*by_link.values(), *by_resource.values()]:
        row.total.delivered = reached.get("all", 0)
        for topic in {*row.topics, *topics}:  # every slice, those nobody clicked in too
            row.cell(topic).delivered = reached.get(topic, 0)
    return IssueResults(
        issue_id=issue.id, issue_number=issue.number, issue_title=issue.title, campaign_ids=ids,
        delivered=reached.get("all", 0), topics=topics, links=list(by_link.values()),
        resources=sorted(by_resource.values(), key=lambda r: r.position),
    )  # fmt: skip


def _add(row: Row, topics: Iterable[str], clickers: int, clicks: int, machine: int) -> None:
    row.total.add(clickers, clicks, machine)
    for topic in topics:
        row.cell(topic).add(clickers, clicks, machine)


def _add_first_party(
    session: Session, ids: Sequence[int], audience: _Audience, by_link: dict[int, Row],
    by_resource: dict[int, Row],
) -> None:  # fmt: skip
    for cid, link_id, segment, clickers, clicks, machine in _first_party_links(session, ids):
        row = by_link.get(link_id)
        if row is not None:
            _add(row, audience.topics(cid, segment), int(clickers or 0), int(clicks or 0),
                 int(machine or 0))  # fmt: skip
    for cid, rid, segment, clickers, clicks, machine in _first_party_resources(session, ids):
        row = by_resource.get(rid)
        if row is not None:
            _add(row, audience.topics(cid, segment), int(clickers or 0), int(clicks or 0),
                 int(machine or 0))  # fmt: skip


def _add_sendgrid(
    rows: Sequence[tuple[Any, ...]], audience: _Audience, by_link: dict[int, Row],
    by_resource: dict[int, Row], resource_of: dict[int, int | None],
) -> None:  # fmt: skip
    first: dict[str, int] = {}
    for link_id, row in sorted(by_link.items(), key=lambda pair: pair[1].position):
        if row.url is not None:
            first.setdefault(row.url, link_id)
    per_resource: dict[tuple[int, int, int, str], int] = defaultdict(int)
    for cid, url, delivery_id, segment, clicks in rows:
        found = first.get(url)
        if found is None:  # our own redirect (counted first-party) or a link not in the issue
            continue
        link_id = found
        _add(by_link[link_id], audience.topics(cid, segment), 1, int(clicks), 0)
        rid = resource_of.get(link_id)
        if rid is not None:
            per_resource[(cid, rid, delivery_id, segment)] += int(clicks)
    for (cid, rid, _delivery, segment), clicks in per_resource.items():
        if rid in by_resource:
            _add(by_resource[rid], audience.topics(cid, segment), 1, clicks, 0)


def reached_by_campaign(session: Session, campaign_ids: Sequence[int]) -> dict[int, int]:
    """Recipients reached per campaign, counted as ``issue_results`` counts them."""
    if not campaign_ids:
        return {}
    transports = dict(session.execute(
        select(Campaign.id, Campaign.transport).where(Campaign.id.in_(campaign_ids))
    ).tuples().all())  # fmt: skip
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, status, count in session.execute(
        select(Delivery.campaign_id, Delivery.status, func.count())
        .where(Delivery.campaign_id.in_(campaign_ids))
        .group_by(Delivery.campaign_id, Delivery.status)
    ).tuples():
        counts[cid][status] = int(count)
    reached = {}
    for cid, by_status in counts.items():
        states = ["delivered"] if reports_delivery(transports.get(cid), by_status) else [
            "delivered", "accepted"]  # fmt: skip
        reached[cid] = sum(by_status.get(s, 0) for s in states)
    return reached
