"""``Store`` on SQLAlchemy: PostgreSQL for many workers, SQLite for one.

Exclusivity: on PostgreSQL a batch is claimed with ``FOR UPDATE SKIP LOCKED``
and, in the same transaction, the worker takes a session advisory lock on it
through a dedicated connection.  The lock lives exactly as long as the worker's
connection, so recovery can tell a dead owner (lock free) from a live one
without any lease timeout.  On SQLite one worker holds a lock file beside the
database, and every in-flight batch it finds at start-up is therefore dead.
"""

from __future__ import annotations

import fcntl
import functools
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Table, and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import outbox as webhook_outbox
from newsletter.db import Database, is_unavailable, unavailable_as_error
from newsletter.deliverability.warmup import WarmupPlan
from newsletter.errors import DatabaseError
from newsletter.models.deliverability import WarmupDay
from newsletter.models.sending import (
    BatchStatus,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SendBatch,
)
from newsletter.models.subscribers import Subscriber, Suppression
from newsletter.sending import pgsql
from newsletter.sending.freeze import assign_batches
from newsletter.sending.segments import decode_segment
from newsletter.sending.types import (
    Addressee,
    ClaimedBatch,
    Recorded,
    Recovery,
    Reservation,
    Submission,
)
from newsletter.transports.base import Outcome, RecipientResult

LOCK_CLASS = 7301  # advisory-lock namespace for send batches (mixed with the schema name)
IN_FLIGHT = (BatchStatus.CLAIMED, BatchStatus.SUBMITTING)
DELIVERIES = cast(Table, Delivery.__table__)
P = ParamSpec("P")
R = TypeVar("R")


def _mapped(method: Callable[P, R]) -> Callable[P, R]:
    """A store call whose lost connection surfaces as ``DatabaseError`` (the engine retries)."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with unavailable_as_error():
            return method(*args, **kwargs)

    return call


class SqlStore:
    """The production store.  One per worker process; not thread-safe."""

    def __init__(self, db: Database, *, worker_id: str) -> None:
        self.db = db
        self.worker_id = worker_id
        self._postgres = db.dialect == "postgresql"
        self._lock_conn: Connection | None = None
        self._lock_file: IO[str] | None = None
        self._lock_class = LOCK_CLASS
        self._held: set[int] = set()  # batches whose advisory lock this worker holds
        if self._postgres:
            self._lock_conn = self._connect_locks()
            self._lock_class = _lock_class(self._lock_conn)
        else:
            self._lock_file = _sqlite_worker_lock(db)

    # --- liveness -------------------------------------------------------------

    def _connect_locks(self) -> Connection:
        return self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _locks(self) -> Connection:
        """The lock connection, reopened (re-taking its locks) if the database dropped it."""
        if self._lock_conn is None:
            conn = self._connect_locks()
            try:
                for batch_id in list(self._held):
                    if not conn.execute(
                        text("SELECT pg_try_advisory_lock(:c, :b)"),
                        {"c": self._lock_class, "b": batch_id},
                    ).scalar():
                        self._held.discard(batch_id)  # another worker recovered it meanwhile
            except BaseException:
                conn.invalidate()
                conn.close()
                raise
            self._lock_conn = conn
        return self._lock_conn

    def _drop_locks(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            # Really close the server session (not back to the pool): its locks must go with it.
            conn.invalidate()
            conn.close()

    def _lock_call(self, function: str, batch_id: int) -> bool:
        try:
            return bool(
                self._locks()
                .execute(text(f"SELECT {function}(:c, :b)"), {"c": self._lock_class, "b": batch_id})
                .scalar()
            )
        except DBAPIError as exc:
            if is_unavailable(exc):
                self._drop_locks()  # its locks died with it; the next call reconnects
            raise

    def _try_lock(self, batch_id: int) -> bool:
        if not self._postgres:
            return True
        got = self._lock_call("pg_try_advisory_lock", batch_id)
        if got:
            self._held.add(batch_id)
        return got

    def _unlock(self, batch_id: int) -> None:
        if not self._postgres:
            return
        self._held.discard(batch_id)
        try:
            self._lock_call("pg_advisory_unlock", batch_id)
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise  # a lost connection took the lock with it: nothing left to release

    def close(self) -> None:
        self._drop_locks()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # --- recovery -------------------------------------------------------------

    @_mapped
    def recover(self, *, now: datetime) -> Recovery:
        recovery = Recovery()
        with self.db.session() as session:
            query = select(SendBatch.id, SendBatch.status).where(SendBatch.status.in_(IN_FLIGHT))
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            for batch_id, status in session.execute(query).all():
                if not self._try_lock(batch_id):
                    continue  # its worker is alive
                try:
                    self._recover_one(session, batch_id, status, now, recovery)
                finally:
                    self._unlock(batch_id)
        return recovery

    def _recover_one(
        self, session: Session, batch_id: int, status: str, now: datetime, recovery: Recovery
    ) -> None:
        if status == BatchStatus.SUBMITTING:
            _set_batch(
                session,
                batch_id,
                status=BatchStatus.UNKNOWN,
                finished_at=now,
                error="worker stopped during submission: maybe sent, not resent",
            )
            session.execute(
                update(Delivery)
                .where(Delivery.batch_id == batch_id, Delivery.status == DeliveryStatus.QUEUED)
                .values(
                    status=DeliveryStatus.UNKNOWN,
                    updated_at=now,
                    detail="maybe sent: worker stopped after submitting",
                )
            )
            _requeue_parked(session, batch_id)
            recovery.unknown_batches.append(batch_id)
        else:
            _set_batch(session, batch_id, status=BatchStatus.PENDING, claimed_by=None)
            recovery.released_batches.append(batch_id)

    # --- claiming -------------------------------------------------------------

    @_mapped
    def claim(self, *, now: datetime) -> ClaimedBatch | None:
        if self._postgres:
            return self._claim_postgres(now)
        locked: int | None = None
        try:
            with self.db.session() as session:
                row = session.execute(self._claim_query(now)).first()
                if row is None:
                    return None
                batch_id, campaign_id, segment, attempts, issue_id, segment_topics = row
                if not self._try_lock(batch_id):
                    return None
                locked = batch_id
                _set_batch(
                    session,
                    batch_id,
                    status=BatchStatus.CLAIMED,
                    claimed_by=self.worker_id,
                    claimed_at=now,
                    attempts=attempts + 1,
                )
                recipients, skipped = self._eligible(session, batch_id, now)
        except BaseException:
            if locked is not None:
                self._unlock(locked)  # the claim did not happen: do not keep its lock
            raise
        return ClaimedBatch(
            id=batch_id,
            campaign_id=campaign_id,
            issue_id=issue_id,
            segment=decode_segment(segment, segment_topics),
            attempts=attempts + 1,
            recipients=tuple(recipients),
            skipped=skipped,
        )

    def _on_locks(
        self, statement: Any, params: dict[str, Any] | None = None
    ) -> tuple[list[Row[Any]], int]:
        """One statement on the autocommit lock connection (PostgreSQL): its rows and rowcount."""
        try:
            result = self._locks().execute(statement, params or {})
            rows = list(result.all()) if result.returns_rows else []
            return rows, _rowcount(result)
        except DBAPIError as exc:
            if is_unavailable(exc):
                self._drop_locks()  # its locks died with it; the next call reconnects
            raise

    def _claim_postgres(self, now: datetime) -> ClaimedBatch | None:
        """Pick, lock, claim and load a batch in one statement (``pgsql.CLAIM``)."""
        rows, _ = self._on_locks(
            pgsql.CLAIM, pgsql.claim_params(self._lock_class, self.worker_id, now)
        )
        batch = pgsql.claimed_batch(rows)
        if batch is not None:
            self._held.add(batch.id)
        return batch

    def _claim_query(self, now: datetime) -> Any:
        query = (
            select(
                SendBatch.id,
                SendBatch.campaign_id,
                SendBatch.segment,
                SendBatch.attempts,
                Campaign.issue_id,
                Campaign.segment_topics,
            )
            .join(Campaign, Campaign.id == SendBatch.campaign_id)
            .where(
                SendBatch.status == BatchStatus.PENDING,
                or_(SendBatch.not_before.is_(None), SendBatch.not_before <= now),
                Campaign.status == CampaignStatus.SENDING,
            )
            .order_by(SendBatch.not_before.is_not(None), SendBatch.campaign_id, SendBatch.seq)
            .limit(1)
        )
        if self._postgres:
            query = query.with_for_update(of=SendBatch, skip_locked=True)
        return query

    def _eligible(
        self, session: Session, batch_id: int, now: datetime
    ) -> tuple[list[Addressee], int]:
        """Queued recipients still confirmed and unsuppressed; the rest are recorded skipped."""
        suppressed = exists().where(Suppression.email_hash == Delivery.email_hash)
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.subscriber_id,
                Subscriber.email,
                Subscriber.name,
                Delivery.email_hash,
                Delivery.attempts,
                Subscriber.status,
                Subscriber.paused_until,
                suppressed.label("suppressed"),
            )
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.batch_id == batch_id, Delivery.status == DeliveryStatus.QUEUED)
            .order_by(Delivery.id)
        ).all()
        keep: list[Addressee] = []
        skip: list[dict[str, Any]] = []
        for did, sid, email, name, ehash, tries, status, paused, is_suppressed in rows:
            reason = _skip_reason(email, status, paused, bool(is_suppressed), now)
            if reason:
                skip.append({"b_id": did, "b_detail": reason})
            else:
                keep.append(Addressee(did, sid, email, name, ehash, tries or 0))
        if skip:
            session.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == bindparam("b_id"))
                .values(
                    status=DeliveryStatus.SKIPPED, detail=bindparam("b_detail"), updated_at=now
                ),
                skip,
            )
        return keep, len(skip)

    @_mapped
    def mark_submitting(
        self, batch_id: int, *, now: datetime, deferred: Sequence[int] = ()
    ) -> bool:
        # SUBMITTING by this very worker too: a retry after a commit whose answer was lost
        # with the connection.  The provider has not been called yet either way.
        if self._postgres:  # one autocommit statement: committed when it returns
            rows, _ = self._on_locks(
                pgsql.MARK_SUBMITTING,
                {"batch_id": batch_id, "worker": self.worker_id, "now": now,
                 "lock_class": self._lock_class,
                 "deferred": "{" + ",".join(map(str, deferred)) + "}",
                 "parking": bool(deferred)},
            )  # fmt: skip
            marked, released = rows[0]
            if released:
                self._held.discard(batch_id)
            return bool(marked)
        with self.db.session() as session:
            sending = session.scalar(
                select(Campaign.status == CampaignStatus.SENDING)
                .join(SendBatch, SendBatch.campaign_id == Campaign.id)
                .where(
                    SendBatch.id == batch_id,
                    SendBatch.status.in_(IN_FLIGHT),
                    SendBatch.claimed_by == self.worker_id,
                )
            )
            if sending is None:
                return False  # not ours any more
            if not sending:
                _set_batch(session, batch_id, status=BatchStatus.PENDING, claimed_by=None)
            else:
                _set_batch(session, batch_id, status=BatchStatus.SUBMITTING, submitted_at=now)
                if deferred:
                    _park(session, batch_id, deferred)
        if not sending:
            self._unlock(batch_id)
        return bool(sending)

    @_mapped
    def release(self, batch_id: int, *, not_before: datetime | None) -> None:
        with self.db.session() as session:
            _set_batch(
                session,
                batch_id,
                status=BatchStatus.PENDING,
                claimed_by=None,
                not_before=not_before,
            )
        self._unlock(batch_id)

    # --- recording ------------------------------------------------------------

    @_mapped
    def record(
        self,
        batch: ClaimedBatch,
        submission: Submission,
        *,
        now: datetime,
        failed: bool | None = None,
        finish: bool = False,
        claim_next: bool = False,
    ) -> Recorded:
        groups = _group(submission.result.results)
        temporary = groups.get(Outcome.TEMPORARY, [])
        failures = groups.get(Outcome.PERMANENT, [])
        if submission.give_up:
            failures, temporary = failures + temporary, []
        accepted = groups.get(Outcome.ACCEPTED, [])
        unknown = groups.get(Outcome.UNKNOWN, [])
        done = not temporary and submission.deferred_until is None
        outcome = self._batch_outcome(submission, done, now)
        run = 0
        next_batch: ClaimedBatch | None = None
        if self._postgres:
            settled = [
                *((r, DeliveryStatus.ACCEPTED) for r in accepted),
                *((r, DeliveryStatus.FAILED) for r in failures),
                *((r, DeliveryStatus.UNKNOWN) for r in unknown),
            ]
            params = pgsql.record_params(
                batch=batch,
                lock_class=self._lock_class,
                now=now,
                settled=settled,
                bumped=temporary,
                outcome=outcome,
                failed=failed,
                finish=finish,
                parked=submission.deferred_until is not None,
            )
            self._held.discard(batch.id)  # released by the statement (or by a lost connection)
            if claim_next:
                params.update(pgsql.claim_params(self._lock_class, self.worker_id, now))
                rows, _ = self._on_locks(pgsql.RECORD_AND_CLAIM, params)
                head = [row for row in rows if row[0] < 0]
                next_batch = pgsql.claimed_batch([row for row in rows if row[0] >= 0])
                if next_batch is not None:
                    self._held.add(next_batch.id)
                run = int(head[0][2] or 0) if head else 0
            else:
                rows, _ = self._on_locks(pgsql.RECORD, params)
                run = int(rows[0][1] or 0) if rows else 0
        else:
            with self.db.session() as session:
                self._apply(session, accepted, DeliveryStatus.ACCEPTED, now)
                self._apply(session, failures, DeliveryStatus.FAILED, now)
                self._apply(session, unknown, DeliveryStatus.UNKNOWN, now)
                if temporary:
                    self._bump_attempts(session, temporary, now)
                if submission.deferred_until is not None:
                    _unpark(session, batch.id)
                _set_batch(session, batch.id, **outcome)
                if failed is not None:
                    run = _note_outcome(session, batch.campaign_id, failed)
                if finish:
                    _finish_campaigns(session, now)
            self._unlock(batch.id)
            if claim_next:
                next_batch = self.claim(now=now)
        return Recorded(
            accepted=len(accepted),
            failed=len(failures),
            requeued=len(temporary),
            unknown=len(unknown),
            batch_done=done,
            failure_run=run,
            next_batch=next_batch,
        )

    @staticmethod
    def _batch_outcome(submission: Submission, done: bool, now: datetime) -> dict[str, Any]:
        result = submission.result
        first_id = next((r.provider_id for r in result.results if r.provider_id), None)
        values: dict[str, Any] = {"provider_id": first_id, "error": result.error}
        if result.relay is not None:
            values["relay"] = result.relay
        all_unknown = result.results and all(r.outcome is Outcome.UNKNOWN for r in result.results)
        if all_unknown and submission.deferred_until is None:
            return {**values, "status": BatchStatus.UNKNOWN, "finished_at": now}
        if done:
            return {**values, "status": BatchStatus.DONE, "finished_at": now}
        times = [t for t in (submission.retry_at, submission.deferred_until) if t is not None]
        return {
            **values,
            "status": BatchStatus.PENDING,
            "claimed_by": None,
            "not_before": min(times) if times else None,
        }

    @staticmethod
    def _apply(
        session: Session, results: list[RecipientResult], status: DeliveryStatus, now: datetime
    ) -> None:
        """Settle queued rows; a row a webhook already moved on is left alone."""
        if not results:
            return
        session.execute(
            update(DELIVERIES)
            .where(
                DELIVERIES.c.id == bindparam("b_id"), DELIVERIES.c.status == DeliveryStatus.QUEUED
            )
            .values(
                status=status,
                provider_id=bindparam("b_pid"),
                detail=bindparam("b_detail"),
                updated_at=now,
                attempts=DELIVERIES.c.attempts + 1,
            ),
            [
                {"b_id": int(r.ref), "b_pid": r.provider_id, "b_detail": r.detail[:2000] or None}
                for r in results
            ],
        )

    @staticmethod
    def _bump_attempts(session: Session, results: list[RecipientResult], now: datetime) -> None:
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == bindparam("b_id"))
            .values(
                attempts=DELIVERIES.c.attempts + 1, detail=bindparam("b_detail"), updated_at=now
            ),
            [{"b_id": int(r.ref), "b_detail": r.detail[:2000] or None} for r in results],
        )

    # --- warm-up --------------------------------------------------------------

    @_mapped
    def reserve(
        self, domain: str, wanted: int, *, now: datetime, plan: WarmupPlan, campaign_id: int
    ) -> Reservation:
        """Today's row of the domain, locked, grows by what fits under today's allowance.

        A campaign held back says so in its ``status_reason`` (cleared once it is not).
        """
        today = plan.local_day(now)
        with self.db.session() as session:
            first = session.scalar(
                select(func.min(WarmupDay.day)).where(WarmupDay.domain == domain)
            )
            number = plan.day_number(today, first)
            allowance = plan.allowance(number)
            insert = pg_insert if self._postgres else sqlite_insert
            session.execute(
                insert(WarmupDay)
                .values(domain=domain, day=today, sent=0)
                .on_conflict_do_nothing(index_elements=["domain", "day"])
            )
            sent = int(
                session.scalar(
                    select(WarmupDay.sent)
                    .where(WarmupDay.domain == domain, WarmupDay.day == today)
                    .with_for_update()
                )
                or 0
            )
            granted = max(0, min(wanted, allowance - sent))
            if granted:
                session.execute(
                    update(WarmupDay)
                    .where(WarmupDay.domain == domain, WarmupDay.day == today)
                    .values(sent=WarmupDay.sent + granted)
                )
            resume = plan.next_day(now) if granted < wanted else None
            _warmup_reason(session, campaign_id, number, allowance, resume)
        return Reservation(granted, today, number, allowance, sent + granted, resume)

    # --- campaign state -------------------------------------------------------

    @_mapped
    def note_outcome(self, campaign_id: int, *, failed: bool) -> int:
        with self.db.session() as session:
            return _note_outcome(session, campaign_id, failed)

    @_mapped
    def pause(self, campaign_id: int, reason: str) -> None:
        with self.db.session() as session:
            session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
                .values(status=CampaignStatus.PAUSED, status_reason=reason)
            )

    @_mapped
    def finish_campaigns(self, *, now: datetime) -> list[int]:
        with self.db.session() as session:
            return _finish_campaigns(session, now)


# --- helpers ------------------------------------------------------------------


WARMUP_REASON = "warm-up"


def _warmup_reason(
    session: Session, campaign_id: int, day: int, allowance: int, resume: datetime | None
) -> None:
    """Say why a sending campaign waits (or stop saying it once it does not)."""
    held = Campaign.status_reason.like(f"{WARMUP_REASON}%")
    if resume is None:
        session.execute(
            update(Campaign).where(Campaign.id == campaign_id, held).values(status_reason=None)
        )
        return
    reason = (
        f"{WARMUP_REASON}: day {day}'s allowance of {allowance} messages is used; "
        f"the rest goes from {resume:%Y-%m-%d %H:%M} UTC"
    )
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
        .values(status_reason=reason)
    )


def _park(session: Session, batch_id: int, deferred: Sequence[int]) -> None:
    """Rows held back from a batch about to be submitted: out of it while it is in flight."""
    session.execute(
        update(Delivery)
        .where(
            Delivery.batch_id == batch_id,
            Delivery.id.in_(list(deferred)),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .values(batch_id=-batch_id)
    )


def _unpark(session: Session, batch_id: int) -> None:
    session.execute(
        update(Delivery).where(Delivery.batch_id == -batch_id).values(batch_id=batch_id)
    )


def _requeue_parked(session: Session, batch_id: int) -> None:
    """A batch lost in flight ends unknown; the rows it held back were never sent: new batches."""
    parked = session.execute(
        update(Delivery).where(Delivery.batch_id == -batch_id).values(batch_id=None)
    )
    if _rowcount(parked):
        campaign_id, size = session.execute(
            select(SendBatch.campaign_id, SendBatch.size).where(SendBatch.id == batch_id)
        ).one()
        assign_batches(campaign_id, session=session, size=max(1, size))


def _note_outcome(session: Session, campaign_id: int, failed: bool) -> int:
    value = Campaign.consecutive_failures + 1 if failed else 0
    session.execute(
        update(Campaign).where(Campaign.id == campaign_id).values(consecutive_failures=value)
    )
    return int(
        session.scalar(select(Campaign.consecutive_failures).where(Campaign.id == campaign_id)) or 0
    )


def _finish_campaigns(session: Session, now: datetime) -> list[int]:
    """Sending campaigns with no batch left pending, held (A/B) or in flight become sent."""
    open_batches = exists().where(
        SendBatch.campaign_id == Campaign.id,
        SendBatch.status.in_((BatchStatus.PENDING, BatchStatus.HELD, *IN_FLIGHT)),
    )
    ids = list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.status == CampaignStatus.SENDING,
                Campaign.frozen_at.is_not(None),
                ~open_batches,
            )
        )
    )
    if ids:
        finished = session.scalars(
            update(Campaign)
            .where(Campaign.id.in_(ids), Campaign.status == CampaignStatus.SENDING)
            .values(status=CampaignStatus.SENT, finished_at=now)
            .returning(Campaign.id)
        ).all()
        _mark_issues_published(session, ids, now)
        webhook_outbox.campaigns_sent(session, finished, now=now)  # in this transaction
    return ids


def _skip_reason(
    email: str | None,
    status: str | None,
    paused: datetime | None,
    suppressed: bool,
    now: datetime,
) -> str | None:
    if email is None:
        return "subscriber erased before sending"
    if suppressed:
        return "address suppressed before sending"
    if status != "confirmed":
        return f"subscriber {status} before sending"
    if paused is not None and paused > now:
        return "subscriber paused delivery"
    return None


def _group(results: Iterable[RecipientResult]) -> dict[Outcome, list[RecipientResult]]:
    groups: dict[Outcome, list[RecipientResult]] = {}
    for result in results:
        groups.setdefault(result.outcome, []).append(result)
    return groups


def _set_batch(session: Session, batch_id: int, **values: Any) -> None:
    session.execute(update(SendBatch).where(SendBatch.id == batch_id).values(**values))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _mark_issues_published(session: Session, campaign_ids: list[int], now: datetime) -> None:
    from newsletter.models.issues import Issue

    issue_ids = select(Campaign.issue_id).where(Campaign.id.in_(campaign_ids))
    session.execute(
        update(Issue)
        .where(and_(Issue.id.in_(issue_ids), Issue.published_at.is_(None)))
        .values(published_at=now)
    )


def _lock_class(conn: Connection) -> int:
    """Advisory locks are database-wide: key them by schema so two schemas never collide."""
    schema = str(conn.execute(text("SELECT current_schema()")).scalar() or "public")
    return (LOCK_CLASS * 1_000_003 + zlib.crc32(schema.encode())) % 2_147_483_647


def _sqlite_worker_lock(db: Database) -> IO[str]:
    """An exclusive lock file beside the SQLite database: one worker at a time."""
    database = make_url(str(db.engine.url)).database or "memory"
    path = Path(f"{database}.worker.lock")
    handle = open(path, "a+")  # noqa: SIM115 - held for the store's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DatabaseError(
            f"another worker is already sending from {database} "
            "(SQLite allows one worker; use PostgreSQL for more)"
        ) from None
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def count_by_status(session: Session, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status)
    ).all()
    return {str(status): int(n) for status, n in rows}
