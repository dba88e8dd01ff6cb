"""Builders for scheduling tests: scheduled campaigns, a stub starter, a runtime on a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.models import Campaign, Delivery, Issue
from newsletter.scheduling.runner import SchedulerRuntime
from newsletter.scheduling.steps import Starter
from newsletter.sending import campaigns
from tests.issue_helpers import ISSUE_42, import_library
from tests.sending_helpers import NoChecks, add_subscribers, make_issue

T0 = datetime(2026, 4, 3, 13, 0, tzinfo=UTC)


def nocheck_starter(db: Database, *, calls: list[int] | None = None) -> Starter:
    """``campaigns.start_campaign`` with stub checks: the start gate without rendering an issue."""

    def start(campaign_id: int, now: datetime) -> bool:
        if calls is not None:
            calls.append(campaign_id)
        with db.session() as session:
            return campaigns.start_campaign(
                campaign_id, session=session, checks=NoChecks(), batch_size=1000, now=now
            )

    return start


def ensure_issue(db: Database, number: int = 42, *, status: str = "ready") -> int:
    with db.session() as session:
        issue = session.scalar(select(Issue).where(Issue.number == number))
        if issue is None:
            issue = make_issue(session, number)
        issue.status = status
        return issue.id


def scheduled_campaign(
    db: Database, at: datetime, *, number: int = 42, subscribers: int = 0
) -> int:
    """A ``scheduled`` campaign for a stub issue (created if missing), due at ``at``.

    Tests schedule the same issue many times on purpose: ``resend`` says so.
    """
    ensure_issue(db, number)
    with db.session() as session:
        if subscribers:
            add_subscribers(session, subscribers, prefix=f"s{number}-")
        return campaigns.create_campaign(number, session=session, scheduled_at=at, resend=True).id


def load(db: Database, campaign_id: int) -> Campaign:
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign


def ledger_rows(db: Database, campaign_id: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.campaign_id == campaign_id)
            )
            or 0
        )


def import_issue_42(db: Database, settings: Settings, seeds_dir: Path) -> None:
    """The real Issue 42 (its preflight passes), for tests that go through ``service.start``."""
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)


def wait_for(predicate: Callable[[], bool], *, timeout: float = 10.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


@contextmanager
def running(runtime: SchedulerRuntime) -> Iterator[threading.Event]:
    """The runtime's loop on a thread; leaving the block stops it as SIGTERM would."""
    stop = threading.Event()
    thread = threading.Thread(target=runtime.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "scheduler runtime did not stop"


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
