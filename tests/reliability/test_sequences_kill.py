"""A confirmation's welcome email goes exactly once: two schedulers tick, a worker is killed.

PostgreSQL, real worker processes (``tests.worker_proc``) against a fake
SendGrid.  The doomed worker claims the welcome batch and is SIGKILLed before
the provider call; two more workers then run side by side and the welcome goes
once.  A worker killed after the provider's 202 leaves the row "unknown": it
was sent once, and nobody sends it again.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from newsletter.automation import sequences
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Delivery, SendBatch
from newsletter.testing.fake_sendgrid import FakeSendGrid
from tests.reliability.helpers import proc_env, spawn
from tests.sequence_helpers import confirmed

KEY = "SG.test-key"


def _welcome(db: Database) -> int:
    now = datetime.now(UTC)
    with db.session() as session:
        seq = sequences.create_sequence(session, "Welcome", "confirmed", topics=[], now=now)
        return sequences.add_step(session, seq.id, 42, delay_minutes=0, now=now).campaign_id


def _two_schedulers_tick(db: Database, settings: Settings) -> None:
    """Two concurrent ticks (two scheduler processes would do the same): one ledger row."""
    barrier, errors = threading.Barrier(2), []

    def one() -> None:
        barrier.wait()
        try:
            sequences.tick(db, settings, datetime.now(UTC))
        except Exception as exc:  # pragma: no cover - the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("stage", "final"), [("claimed", "accepted"), ("sent", "unknown")])
def test_welcome_goes_once_with_two_workers_and_one_killed(
    issue42: Database, settings: Settings, stage: str, final: str
) -> None:
    cid = _welcome(issue42)
    confirmed(issue42, "ada@example.org", datetime.now(UTC))
    _two_schedulers_tick(issue42, settings)
    with issue42.session() as session:
        rows = session.scalar(select(func.count()).where(Delivery.campaign_id == cid))
        batches = session.scalar(select(func.count()).where(SendBatch.campaign_id == cid))
    assert (rows, batches) == (1, 1)
    with FakeSendGrid(KEY) as server:
        env = proc_env(
            settings, NEWSLETTER_TRANSPORT="sendgrid", NEWSLETTER_SENDGRID_API_KEY=KEY,
            NEWSLETTER_SENDGRID_HOST=server.url,
        )  # fmt: skip
        doomed = spawn(["-m", "tests.worker_proc"], {**env, "KILL_AT": stage})
        out, err = doomed.communicate(timeout=60)
        assert doomed.returncode == -signal.SIGKILL, (out, err)
        sequences.tick(issue42, settings, datetime.now(UTC))  # the next sweep: nothing new
        survivors = [spawn(["-m", "tests.worker_proc"], {**env, "UNTIL_IDLE": "1"})
                     for _ in range(2)]  # fmt: skip
        for proc in survivors:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        calls = server.accepted_ledger_ids()
    with issue42.session() as session:
        ledger = session.execute(
            select(Delivery.id, Delivery.status).where(Delivery.campaign_id == cid)
        ).all()
    assert [status for _, status in ledger] == [final]
    assert calls == {str(ledger[0].id): 1}  # the provider took the welcome exactly once
