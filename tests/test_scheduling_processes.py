"""Two real scheduler processes on one PostgreSQL schema: one start per due time, and failover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.models import Delivery
from newsletter.sending import campaigns
from tests.conftest import PG_URL, REPO
from tests.scheduler_helpers import import_issue_42, load, soon, wait_for
from tests.sending_helpers import add_subscribers

SUBSCRIBERS = 25


@pytest.fixture
def pg_settings(pg_schema: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        database_url=PG_URL, database_schema=pg_schema, transport="memory", batch_size=5
    )


@pytest.fixture
def pg_db(pg_settings: Settings, seeds_dir: Path) -> Iterator[Database]:
    db = connect(pg_settings)
    import_issue_42(db, pg_settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, SUBSCRIBERS)
    yield db
    db.dispose()


class Scheduler:
    """One ``newsletter scheduler run`` process with its output in a file."""

    def __init__(self, command: list[str], settings: Settings, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env |= {
            "NEWSLETTER_DATABASE_URL": settings.database_url,
            "NEWSLETTER_DATABASE_SCHEMA": settings.database_schema or "",
            "NEWSLETTER_TRANSPORT": "memory",
            "NEWSLETTER_BATCH_SIZE": "5",
            "NEWSLETTER_SECRET_KEY": "test-secret-key-not-default",
            "NEWSLETTER_VAR_DIR": str(log.parent / "var"),
        }
        options = ["--sweep-seconds", "0.5", "--retry-seconds", "0.2"]
        self.log = log
        self.handle = log.open("w")
        self.proc = subprocess.Popen(
            [*command, *options],
            cwd=log.parent,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text()

    def leads(self) -> bool:
        return "became leader" in self.output()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self.handle.close()
        return code


def _campaign(db: Database) -> int:
    with db.session() as session:
        return campaigns.create_campaign(
            42, session=session, scheduled_at=soon(1.0), resend=True
        ).id


def _ledger(db: Database, cid: int) -> tuple[int, int]:
    with db.session() as session:
        rows, people = session.execute(
            select(func.count(), func.count(func.distinct(Delivery.subscriber_id))).where(
                Delivery.campaign_id == cid
            )
        ).one()
    return int(rows), int(people)


def _starts(schedulers: list[Scheduler], cid: int) -> int:
    return sum(s.output().count(f"started campaign #{cid} ") for s in schedulers)


def test_two_schedulers_start_each_campaign_once_and_the_follower_takes_over(
    pg_db: Database, pg_settings: Settings, tmp_path: Path
) -> None:
    module = [sys.executable, "-m", "newsletter", "scheduler", "run"]
    script = [sys.executable, str(REPO / "scheduler.py")]  # the thin entry point
    schedulers = [
        Scheduler(module, pg_settings, tmp_path / "a.log"),
        Scheduler(script, pg_settings, tmp_path / "b.log"),
    ]
    try:
        assert wait_for(lambda: any(s.leads() for s in schedulers), timeout=20)
        first = _campaign(pg_db)
        assert wait_for(lambda: load(pg_db, first).status == "sent", timeout=30)
        assert [s.leads() for s in schedulers].count(True) == 1
        assert _starts(schedulers, first) == 1
        assert load(pg_db, first).started_at is not None
        assert _ledger(pg_db, first) == (SUBSCRIBERS, SUBSCRIBERS)

        leader = next(s for s in schedulers if s.leads())
        follower = next(s for s in schedulers if s is not leader)
        leader.stop(signal.SIGKILL)  # no goodbye: its server session (and lock) just dies
        assert wait_for(follower.leads, timeout=15), follower.output()
        second = _campaign(pg_db)
        assert wait_for(lambda: load(pg_db, second).status == "sent", timeout=30)
        assert _starts(schedulers, second) == 1
        assert f"started campaign #{second} " in follower.output()
        assert _ledger(pg_db, second) == (SUBSCRIBERS, SUBSCRIBERS)

        assert follower.stop(signal.SIGTERM) == 0
        assert "leadership released" in follower.output()
        assert "Traceback" not in follower.output()
    finally:
        for s in schedulers:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
