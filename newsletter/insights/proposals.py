"""Drafting help: the next issue's number, date and title, and resources worth a look.

Only proposals: the new-issue form is filled in (the editor changes anything),
candidate resources are offered unticked, and the CLI prints them with the
command that adds one.  Nothing is added to an issue without the editor.

* **Next issue**: the last issue's number plus one; its date from the next run
  of an enabled schedule when one is due after the last issue, else a month
  after the last issue's date; its title is the last title with the number and
  the month written anew ("Issue 42: April 2018" -> "Issue 43: May 2018").
* **Candidates**: resources added since the last issue (since it was sent, or
  created if it never was) that no issue features yet, ranked by how readers
  clicked resources of the same topics before (unique clickers over recipients
  reached, over every campaign), newest first among equals.  Each carries its
  reasons: "new since Issue 42", "topic Equity: 8 % CTR".
* **Recently featured**: a resource already in one of the last issues gets a
  warning wherever an editor adds it (the picker, ``issue add-item``).
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.insights import history
from newsletter.models import Issue, IssueItem, Resource
from newsletter.models.scheduling import Schedule

CANDIDATES = 10
MONTHS = list(calendar.month_name)[1:]
_MONTH_YEAR = re.compile(r"\b(" + "|".join(MONTHS) + r")\s+(\d{4})\b")


@dataclass(frozen=True)
class NextIssue:
    number: int
    issue_date: date
    title: str
    subject: str
    basis: str  # why this date: "schedule 'monthly'" or "a month after Issue 42"

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "date": self.issue_date.isoformat(), "title": self.title,
                "subject": self.subject, "basis": self.basis}  # fmt: skip


@dataclass
class Candidate:
    resource: Resource
    score: float  # the best click-through of its topics (0: no history)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        r = self.resource
        return {"id": r.id, "slug": r.slug, "title": r.title, "topics": r.topics,
                "score": self.score, "reasons": self.reasons}  # fmt: skip


def add_months(day: date, months: int) -> date:
    """``day`` ``months`` later, on the same day of the month where that month has it."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def percent(value: float) -> str:
    """ "8 %", "0.4 %": whole percents once there is one, else one decimal."""
    shown = value * 100
    return f"{shown:.0f} %" if shown >= 1 or shown == 0 else f"{shown:.1f} %"


def last_issue(session: Session) -> Issue | None:
    return session.scalars(select(Issue).order_by(Issue.number.desc()).limit(1)).first()


def _scheduled(session: Session, after: date) -> tuple[date, str] | None:
    runs = session.execute(
        select(Schedule.next_run_at, Schedule.name)
        .where(Schedule.enabled.is_(True), Schedule.next_run_at.is_not(None))
        .order_by(Schedule.next_run_at)
    ).tuples()  # fmt: skip
    for at, name in runs:
        if at is not None and at.date() > after:
            return at.date(), f"the next run of schedule {name!r}"
    return None


def retitle(title: str, old_number: int, number: int, day: date) -> str:
    """The last title with the number and any "Month YYYY" written for the new issue."""
    text = re.sub(rf"(?<!\d){old_number}(?!\d)", str(number), title, count=1)
    return _MONTH_YEAR.sub(f"{MONTHS[day.month - 1]} {day.year}", text, count=1)


def next_issue(session: Session, *, today: date) -> NextIssue:
    last = last_issue(session)
    if last is None:
        title = f"Issue 1: {MONTHS[today.month - 1]} {today.year}"
        return NextIssue(1, today, title, title, "the first issue, dated today")
    number = last.number + 1
    found = _scheduled(session, last.issue_date)
    day, basis = found or (add_months(last.issue_date, 1), f"a month after Issue {last.number}")
    title = retitle(last.title, last.number, number, day)
    return NextIssue(number, day, title, title, basis)


def _topic_rates(session: Session) -> dict[str, float]:
    """Each topic's click-through over every resource carrying it that went out."""
    numbers = history.lifetime(session)
    if not numbers:
        return {}
    clickers: dict[str, int] = defaultdict(int)
    reached: dict[str, int] = defaultdict(int)
    for row in session.scalars(select(Resource).where(Resource.id.in_(list(numbers)))):
        for topic in row.topics:
            clickers[topic] += numbers[row.id].clickers
            reached[topic] += numbers[row.id].delivered
    return {t: clickers[t] / reached[t] for t in reached if reached[t]}


def _since(last: Issue | None) -> datetime | None:
    if last is None:
        return None
    return last.published_at or last.created_at


def candidates(session: Session, *, limit: int = CANDIDATES) -> list[Candidate]:
    """Resources new since the last issue and never featured, best-clicking topics first."""
    last = last_issue(session)
    featured = select(IssueItem.resource_id).where(IssueItem.resource_id.is_not(None))
    query = select(Resource).where(Resource.id.not_in(featured))
    since = _since(last)
    if since is not None:
        query = query.where(Resource.created_at > since)
    rates = _topic_rates(session)
    found = []
    for row in session.scalars(query.order_by(Resource.created_at.desc(), Resource.id.desc())):
        reasons = [f"new since Issue {last.number}" if last else "never featured"]
        known = sorted(((rates[t], t) for t in row.topics if t in rates), reverse=True)
        reasons += [f"topic {t}: {percent(rate)} CTR" for rate, t in known[:2]]
        found.append(Candidate(row, known[0][0] if known else 0.0, reasons))
    found.sort(key=lambda c: -c.score)  # stable: newest first among equals
    return found[:limit]


def recent_features(
    session: Session, resource_ids: list[int], *, exclude: int | None = None
) -> dict[int, str]:
    """A warning per resource already in one of the last issues (not counting ``exclude``)."""
    numbers = [n for n in history.recent_issue_numbers(session, history.RECENT_ISSUES + 1)
               if n != exclude][: history.RECENT_ISSUES]  # fmt: skip
    warnings: dict[int, str] = {}
    for rid, entries in history.featured_in(session, resource_ids).items():
        recent = [f.number for f in entries if f.number in numbers]
        if recent:
            listed = ", ".join(f"Issue {n}" for n in recent)
            warnings[rid] = f"already featured in {listed}, one of the last {len(numbers)} issues"
    return warnings
