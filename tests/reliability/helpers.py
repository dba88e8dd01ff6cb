"""Shared tools for the reliability suite: the ledger audit, provider-call counters, processes.

``audit(db, campaign_id, provider_calls)`` is the one check every fault test
ends with.  ``provider_calls`` maps a ledger id (``Delivery.id``, as the
providers see it in ``custom_args.ledger_id``, the SMTP envelope or the
Message-ID) to how many times the provider *took* that recipient's message.
"""

from __future__ import annotations

import asyncio
import email
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Campaign, Delivery, Subscriber
from newsletter.models.sending import FINAL_STATES, DeliveryStatus
from newsletter.sending import campaigns
from newsletter.testing.smtp_sink import SmtpSink, _Handler
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    Outcome,
    RecipientResult,
    message_id,
)

REPO = Path(__file__).resolve().parents[2]
SENT_STATES = frozenset(
    {
        DeliveryStatus.ACCEPTED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.DROPPED,
    }
)
NOT_SENT_STATES = frozenset({DeliveryStatus.FAILED, DeliveryStatus.SKIPPED})


# --------------------------------------------------------------------------- the audit


@dataclass
class Audit:
    """What the ledger and the provider agree (and disagree) on for one campaign."""

    campaign_id: int
    total: int
    states: Counter[str]
    duplicates: dict[int, int] = field(default_factory=dict)  # ledger id -> provider calls > 1
    not_final: list[int] = field(default_factory=list)  # still queued: never settled
    lost: list[int] = field(default_factory=list)  # recorded sent, provider never got it
    sent_but_unsent: list[int] = field(default_factory=list)  # provider got it, ledger says no
    silent_skips: list[int] = field(default_factory=list)  # skipped with no reason recorded
    unlisted_unknown: list[int] = field(default_factory=list)  # unknown, missing from report
    strays: list[int] = field(default_factory=list)  # provider calls for ids not in the ledger
    unknown: list[int] = field(default_factory=list)  # maybe sent: listed for reconciliation

    @property
    def silently_skipped(self) -> int:
        """Recipients nobody sent and nobody will tell the admin about."""
        return len(self.not_final) + len(self.lost) + len(self.silent_skips)

    def problems(self) -> list[str]:
        found = []
        for name in (
            "duplicates",
            "not_final",
            "lost",
            "sent_but_unsent",
            "silent_skips",
            "unlisted_unknown",
            "strays",
        ):
            value = getattr(self, name)
            if value:
                shown = sorted(value.items())[:10] if isinstance(value, dict) else value[:10]
                found.append(f"{name}: {len(value)} (e.g. {shown})")
        return found


def audit(
    db: Database,
    campaign_id: int,
    provider_calls: Mapping[int, int] | Mapping[str, int],
    *,
    check: bool = True,
) -> Audit:
    """Reconcile the ledger with what the provider received; raise if they disagree.

    Rules: every ledger row is in exactly one *final* state; the provider took
    no recipient twice; a row recorded as sent was taken exactly once; a row
    recorded failed or skipped was not taken; a skip says why; an unknown
    ("maybe sent") row may have been taken at most once and is listed in the
    campaign report so the admin can reconcile it.
    """
    calls = Counter({int(k): int(v) for k, v in provider_calls.items() if int(v) > 0})
    with db.session() as session:
        campaign = campaigns.get_campaign(campaign_id, session=session)
        rows = session.execute(
            select(Delivery.id, Delivery.subscriber_id, Delivery.status, Delivery.detail).where(
                Delivery.campaign_id == campaign_id
            )
        ).all()
        report = campaigns.campaign_report(campaign_id, session=session, with_recipients=False)
        total = campaign.total_recipients
    subscribers = [r.subscriber_id for r in rows if r.subscriber_id is not None]
    assert len(subscribers) == len(set(subscribers)), "a subscriber has two ledger rows"
    assert len(rows) == total, f"ledger has {len(rows)} rows, campaign says {total}"
    result = Audit(campaign_id, total, Counter(str(r.status) for r in rows))
    ids = {int(r.id) for r in rows}
    result.duplicates = {i: n for i, n in calls.items() if n > 1}
    result.strays = sorted(set(calls) - ids)
    listed = {int(row["ledger_id"]) for row in report.unknown}
    for row in rows:
        did, status, taken = int(row.id), str(row.status), calls.get(int(row.id), 0)
        if status not in FINAL_STATES:
            result.not_final.append(did)
        elif status in SENT_STATES and taken == 0:
            result.lost.append(did)
        elif status in NOT_SENT_STATES and taken > 0:
            result.sent_but_unsent.append(did)
        if status == DeliveryStatus.SKIPPED and not (row.detail or "").strip():
            result.silent_skips.append(did)
        if status == DeliveryStatus.UNKNOWN:
            result.unknown.append(did)
            if did not in listed:
                result.unlisted_unknown.append(did)
    if check:
        problems = result.problems()
        assert not problems, f"ledger audit of campaign #{campaign_id} failed: " + "; ".join(
            problems
        )
    return result


# --------------------------------------------------------------------------- provider calls


def ledger_ids_by_email(db: Database, campaign_id: int) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.campaign_id == campaign_id)
        ).all()
    return {str(e): int(i) for e, i in rows}


def calls_by_email(db: Database, campaign_id: int, emails: Iterable[str]) -> Counter[int]:
    """Provider calls counted per address (SMTP envelopes) turned into ledger ids."""
    ids = ledger_ids_by_email(db, campaign_id)
    return Counter(ids[e] for e in emails)


def outbox_refs(folder: Path) -> Counter[str]:
    """The ledger ref of every ``.eml`` in an outbox (from its Message-ID), counted."""
    refs: Counter[str] = Counter()
    if not folder.is_dir():
        return refs
    for path in folder.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        refs[str(msg["Message-ID"]).strip("<>").split(".", 1)[0]] += 1
    return refs


class RecordingMessenger:
    """A thread-safe in-memory provider: counts what it took per ref, fails on command.

    ``fail_once`` holds addresses refused (permanently) the first time only;
    ``delay`` makes each call slow so faults can land while a batch is in flight.
    """

    name = "recording"
    max_batch = 1000

    def __init__(self, *, fail_once: Iterable[str] = (), delay: float = 0.0) -> None:
        self.taken: Counter[str] = Counter()
        self.calls = 0
        self.delay = delay
        self._fail_once = set(fail_once)
        self._lock = threading.Lock()

    def send(self, batch: MessageBatch) -> BatchResult:
        if self.delay:
            time.sleep(self.delay)
        results = []
        with self._lock:
            self.calls += 1
            for rcpt in batch.recipients:
                if rcpt.email in self._fail_once:
                    self._fail_once.discard(rcpt.email)
                    results.append(RecipientResult(rcpt.ref, Outcome.PERMANENT, detail="550 no"))
                    continue
                batch.template.fill({**rcpt.values, "email": rcpt.email})
                self.taken[rcpt.ref] += 1
                msg_id = message_id(rcpt.ref, batch.sender)
                results.append(RecipientResult(rcpt.ref, Outcome.ACCEPTED, msg_id, "taken"))
        return BatchResult(tuple(results))

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- processes


def proc_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a ``newsletter`` subprocess using these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": settings.database_url,
            "NEWSLETTER_VAR_DIR": str(settings.var_dir),
            "NEWSLETTER_SECRET_KEY": settings.secret_key.get_secret_value(),
            "NEWSLETTER_DEBUG": "1",
            "NEWSLETTER_BATCH_SIZE": str(settings.batch_size),
            "PYTHONPATH": str(REPO),
            **extra,
        }
    )
    if settings.database_schema:
        env["NEWSLETTER_DATABASE_SCHEMA"] = settings.database_schema
    return env


def spawn(
    args: list[str], env: dict[str, str], *, wrapper: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """``python <args>`` from the repository root (behind ``wrapper``), output captured."""
    return subprocess.Popen(
        [*wrapper, sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def unprivileged() -> list[str]:
    """A command prefix under which file modes apply (root ignores them); [] if not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder unwritable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """The real ``newsletter`` command in a subprocess."""
    return spawn(["-m", "newsletter", *args], env)


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def sigkill(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    return out, err


def campaign_status(db: Database, campaign_id: int) -> str:
    with db.session() as session:
        return str(session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)))


def statuses(db: Database, campaign_id: int) -> Counter[str]:
    with db.session() as session:
        return Counter(
            str(s)
            for s in session.scalars(
                select(Delivery.status).where(Delivery.campaign_id == campaign_id)
            )
        )


# --------------------------------------------------------------------------- webhooks


# --------------------------------------------------------------------------- SMTP


class StallingHandler(_Handler):
    """Takes the ``stall_at``-th message, then never answers its DATA until released."""

    def __init__(self, sink: SmtpSink, stall_at: int) -> None:
        super().__init__(sink)
        self.stall_at = stall_at
        self.seen = 0
        self.stalled = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen += 1
        reply = await super().handle_DATA(server, session, envelope)
        if self.seen == self.stall_at:
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return reply


def stalling_sink(stall_at: int) -> tuple[SmtpSink, StallingHandler]:
    """An ``SmtpSink`` whose ``stall_at``-th message is taken but never answered (until released)."""
    sink = SmtpSink()
    handler = StallingHandler(sink, stall_at)
    sink._controller.handler = handler  # the sink has no stall of its own
    return sink, handler
