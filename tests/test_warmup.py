"""Warm-up: a day's allowance, most engaged first, the rest the next day by itself."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.deliverability.engagement import engagement_sql
from newsletter.deliverability.warmup import WarmupPlan
from newsletter.models import Campaign, Delivery, Subscriber, WarmupDay
from newsletter.sending import campaigns
from newsletter.sending.engine import Policy, Worker
from newsletter.sending.sqlstore import SqlStore
from newsletter.transports import MemoryMessenger
from tests.sending_helpers import FakeClock, NoChecks, add_subscribers, make_issue, stub_preparer

PLAN = WarmupPlan(domain="example.org", first_day=200, factor=2.0, timezone="America/New_York")


def test_plan_doubles_daily_on_local_days() -> None:
    assert [PLAN.allowance(n) for n in (1, 2, 3, 4)] == [200, 400, 800, 1600]
    late = datetime(2026, 4, 4, 2, 30, tzinfo=UTC)  # 22:30 on the 3rd in New York
    assert PLAN.local_day(late) == date(2026, 4, 3)
    assert PLAN.next_day(late) == datetime(2026, 4, 4, 4, 0, tzinfo=UTC)  # midnight EDT
    assert PLAN.day_number(date(2026, 4, 5), date(2026, 4, 3)) == 3
    assert PLAN.schedule(date(2026, 4, 3), date(2026, 4, 5), days=3) == [
        (date(2026, 4, 3), 200), (date(2026, 4, 4), 400), (date(2026, 4, 5), 800),
    ]  # fmt: skip


def _earlier_campaign_with_engagement(db: Database, clock: FakeClock, engaged: list[int]) -> None:
    """A past campaign where the given subscribers (1-based positions) opened or clicked."""
    with db.session() as session:
        past = campaigns.create_campaign(42, session=session).id
    with db.session() as session:
        campaigns.start_campaign(past, session=session, checks=NoChecks(), batch_size=1000,
                                 now=clock() - timedelta(days=7))  # fmt: skip
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        when = clock() - timedelta(days=6)
        for rank, position in enumerate(engaged):
            values: dict[str, Any] = {"opened_at": when}
            if rank % 2 == 0:
                values["clicked_at"] = when
            session.execute(update(Delivery).where(Delivery.campaign_id == past,
                            Delivery.subscriber_id == ids[position - 1]).values(**values))  # fmt: skip
        session.execute(update(Campaign).where(Campaign.id == past).values(status="sent"))


def run_day(db: Database, messenger: MemoryMessenger, clock: FakeClock, plan: WarmupPlan) -> Any:
    store = SqlStore(db, worker_id="warmup")
    try:
        worker = Worker(store=store, messenger=messenger, prepare=stub_preparer,
                        policy=Policy(), clock=clock, sleep=clock.sleep, warmup=plan)  # fmt: skip
        return worker.run(threading.Event(), until=lambda: True)
    finally:
        store.close()


def test_a_campaign_over_the_allowance_sends_the_most_engaged_first_and_finishes_tomorrow(
    db: Database,
) -> None:
    clock = FakeClock()  # 2026-04-03 13:00 UTC
    with db.session() as session:
        make_issue(session)
        add_subscribers(session, 500)
    engaged = [499, 498, 250, 7, 120]  # by subscriber position, most recent activity
    _earlier_campaign_with_engagement(db, clock, engaged)
    with db.session() as session:
        cid = campaigns.create_campaign(42, session=session, resend=True).id  # a later issue
    with db.session() as session:
        campaigns.start_campaign(cid, session=session, checks=NoChecks(), batch_size=100,
                                 now=clock(), engagement=engagement_sql())  # fmt: skip
    messenger = MemoryMessenger()
    day1 = run_day(db, messenger, clock, PLAN)
    assert len(messenger.sent) == 200 and day1.deferred > 0
    first = [m.email for m in messenger.sent[:5]]
    # clickers first (score 2), then openers, each group by subscriber id
    assert first == ["user119@example.org", "user249@example.org", "user498@example.org",
                     "user6@example.org", "user497@example.org"]  # fmt: skip
    with db.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign is not None and campaign.status == "sending"
        assert campaign.status_reason == (
            "warm-up: day 1's allowance of 200 messages is used; the rest goes from "
            "2026-04-04 04:00 UTC"
        )
    # Nothing more today, however often a worker looks.
    clock.now = datetime(2026, 4, 4, 3, 59, tzinfo=UTC)
    run_day(db, messenger, clock, PLAN)
    assert len(messenger.sent) == 200
    # The next (local) day it continues by itself: 400 allowed, 300 left.
    clock.now = datetime(2026, 4, 4, 4, 0, 1, tzinfo=UTC)
    run_day(db, messenger, clock, PLAN)
    assert len(messenger.sent) == 500 and set(
        Counter(m.email for m in messenger.sent).values()
    ) == {1}
    with db.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign is not None and campaign.status == "sent" and campaign.status_reason is None
        days = session.execute(select(WarmupDay.day, WarmupDay.sent).order_by(WarmupDay.day)).all()
    assert [tuple(d) for d in days] == [(date(2026, 4, 3), 200), (date(2026, 4, 4), 300)]


def test_admin_shows_the_plan_and_where_it_stands(db: Database, settings: Settings) -> None:
    from tests.admin_helpers import signed_in_client

    today = datetime.now(UTC).date()
    with db.session() as session:
        session.add(WarmupDay(domain="example.org", day=today - timedelta(days=1), sent=200))
        session.add(WarmupDay(domain="example.org", day=today, sent=150))
    configured = settings.model_copy(update={"warmup": True, "dns_resolver": "127.0.0.1:1",
                                             "dns_timeout_seconds": 0.2})  # fmt: skip
    page = signed_in_client(db, configured, "admin").get("/admin/settings/deliverability").text
    assert "Warm-up" in page and "day 2 of the plan" in page
    assert "150 of 400 sent today" in page
    assert f"{today - timedelta(days=1)}" in page and "800" in page
    assert "inactive subscribers (no open or click in the last 6 campaigns)" in page
