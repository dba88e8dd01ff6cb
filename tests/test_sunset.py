"""Sunset: inactive after N campaigns without an open or click, re-engaged once, then suppressed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.deliverability import sunset
from newsletter.models import Campaign, Delivery, Subscriber, Suppression
from newsletter.sending import campaigns
from tests.sending_helpers import NoChecks, add_subscribers, make_issue
from tests.test_cli import run_here as run

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def sent(
    db: Database, when: datetime, *, opened: set[int] = frozenset(), audience: str = "active"
) -> int:  # type: ignore[assignment]
    """A campaign frozen and delivered at ``when``; subscribers at these positions opened it."""
    with db.session() as session:
        # One issue stands in for a run of issues here: ``resend`` says so.
        cid = campaigns.create_campaign(42, session=session, audience=audience, resend=True).id
    with db.session() as session:
        campaigns.start_campaign(cid, session=session, checks=NoChecks(), batch_size=1000, now=when)
        session.execute(
            update(Delivery).where(Delivery.campaign_id == cid).values(status="delivered")
        )
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        for position in opened:
            session.execute(update(Delivery).where(Delivery.campaign_id == cid,
                            Delivery.subscriber_id == ids[position - 1]).values(opened_at=when))  # fmt: skip
        session.execute(
            update(Campaign).where(Campaign.id == cid).values(status="sent", finished_at=when)
        )
    return cid


def emails(db: Database, cid: int) -> set[str]:
    with db.session() as session:
        rows = session.scalars(select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
                               .where(Delivery.campaign_id == cid))  # fmt: skip
        return set(rows)


def test_inactive_left_out_reengaged_then_suppressed(db: Database, settings: Settings) -> None:
    with db.session() as session:
        make_issue(session)
        add_subscribers(session, 9)  # user0..user8, positions 1..9
    for week in range(3):
        sent(db, T0 + timedelta(weeks=week), opened={1} if week == 0 else set())
    with db.session() as session:
        add_subscribers(session, 1, prefix="late")  # joined after three campaigns
    for week in range(3, 6):
        sent(db, T0 + timedelta(weeks=week), opened={2, 3} if week == 5 else set())
    now = T0 + timedelta(weeks=6)
    with db.session() as session:
        report = sunset.run(session, settings, now=now)
    assert report.marked == 6  # positions 4..9: six campaigns, no open; not the late one
    with db.session() as session:
        inactive = set(
            session.scalars(select(Subscriber.email).where(Subscriber.inactive_since.is_not(None)))
        )
        assert sunset.counts(session) == {"inactive": 6, "suppressed": 0}
    assert inactive == {f"user{i}@example.org" for i in range(3, 9)}
    regular = sent(db, now)
    assert emails(db, regular) == {"user0@example.org", "user1@example.org", "user2@example.org",
                                   "late0@example.org"}  # fmt: skip
    # The re-engagement issue goes to the inactive only; user3 opens it.
    reengage = sent(db, now + timedelta(days=1), opened={4}, audience="inactive")
    assert emails(db, reengage) == inactive
    with db.session() as session:
        again = sunset.run(session, settings, now=now + timedelta(days=2))
    # user0's one open has left the last six campaigns: inactive now too (not re-engaged yet)
    assert (again.reactivated, again.marked) == (1, 1)
    with db.session() as session:  # still within the grace period: nobody suppressed yet
        mid = sunset.run(session, settings, now=now + timedelta(days=10))
        assert mid.suppressed == 0, mid
        assert mid.marked == 0, mid
    with db.session() as session:
        late = sunset.run(session, settings, now=now + timedelta(days=16))
    assert late.suppressed == 5 and late.campaigns == [reengage]
    with db.session() as session:
        notes = set(session.scalars(select(Suppression.note)))
        assert sunset.counts(session) == {"inactive": 6, "suppressed": 5}  # 5 + user0
    assert notes == {f"sunset: no open or click in the last 6 campaigns nor in re-engagement "
                     f"campaign #{reengage} (Issue 42: April 2018)"}  # fmt: skip
    everyone = sent(db, now + timedelta(days=20), audience="all")
    assert "user3@example.org" in emails(db, everyone) and "user8@example.org" not in emails(
        db, everyone
    )


def test_sunset_cli(tmp_path: Path) -> None:
    result = run("subscribers", "sunset", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "marked": 0,
        "reactivated": 0,
        "suppressed": 0,
        "campaigns": [],
    }
    bad = run("campaign", "create", "42", "--audience", "nobody", cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
