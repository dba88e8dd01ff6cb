"""The dispatcher: claims due deliveries, POSTs them signed, records the answer, retries.

It runs on a thread of its own beside the scheduler (``newsletter serve``,
``newsletter scheduler run``), with a small pool of HTTP threads, so an
endpoint that hangs ties up at most ``webhook_concurrency`` of them and
nothing else: sending and the web app only ever inserted rows.

A delivery is claimed (``sending``, with a lease) in a short transaction,
the request is made outside any transaction, and the outcome is written in
another.  On PostgreSQL several dispatchers share the work: each locks an
endpoint's row with ``FOR UPDATE SKIP LOCKED`` while it claims for it, which
also keeps the per-endpoint concurrency exact across processes; SQLite's
single writer orders claims by itself (the claim is a conditional UPDATE, so
no delivery is claimed twice).  A dispatcher that dies mid-request leaves a
lease that runs out, and the delivery is tried again: delivery is
at-least-once, and the event id lets receivers drop repeats.

A failed attempt is retried after 30 s, doubling up to an hour (plus up to
20 % of spread so a recovered endpoint is not hit by everything at once),
until ``webhook_retry_hours`` after the delivery was created; then it is
``failed`` and an admin may replay it.  An endpoint with no 2xx for that long
is disabled, the reason shown on its page.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import events as ev
from newsletter.automation.webhooks.registry import Resolver, safe_target, system_resolver
from newsletter.automation.webhooks.signing import SIGNATURE_HEADER, header
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import StateError, ValidationError
from newsletter.models.automation import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookState,
)
from newsletter.models.base import utcnow

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
EXCERPT_BYTES = 300
PURGE_EVERY = timedelta(hours=1)
USER_AGENT = "newsletter-webhooks/1"
D = WebhookDelivery


def backoff(attempt: int, delivery_id: int) -> timedelta:
    """How long after failed attempt number ``attempt`` (1-based) the next one comes."""
    base = min(LONGEST_RETRY, FIRST_RETRY * (1 << max(0, min(attempt - 1, 20))))
    spread = zlib.crc32(f"{delivery_id}:{attempt}".encode()) % 21 / 100  # 0-20 %, repeatable
    return base * (1 + spread)


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery, with everything the request needs."""

    delivery_id: int
    endpoint_id: int
    url: str
    secret: str
    event: str
    event_id: str
    body: str
    attempt: int  # this attempt's number, 1-based
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP attempt came to: a status code, or no answer and why."""

    status_code: int | None
    error: str | None = None
    excerpt: str | None = None
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def summary(self) -> str:
        if self.status_code is not None:
            return f"HTTP {self.status_code}" + (f": {self.excerpt}" if self.excerpt else "")
        return self.error or "no answer"


def _one_line(raw: bytes) -> str | None:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:EXCERPT_BYTES] or None


def post(job: Job, *, settings: Settings, now: datetime, resolve: Resolver) -> Attempt:
    """One signed POST to the checked address; never raises for the endpoint's faults."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = safe_target(
            job.url, allow_private=settings.webhook_allow_private_addresses, resolve=resolve
        )
    except ValidationError as exc:
        return Attempt(None, exc.message, None, took())
    body = job.body.encode()
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Newsletter-Event": job.event,
        "Newsletter-Event-Id": job.event_id,
        "Newsletter-Delivery": str(job.delivery_id),
        "Newsletter-Attempt": str(job.attempt),
        SIGNATURE_HEADER: header(job.secret, int(now.timestamp()), body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    timeout = settings.webhook_timeout_seconds
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) >= EXCERPT_BYTES * 4:
                    break
            return Attempt(response.status_code, None, _one_line(raw), took())
    except httpx.TimeoutException:
        return Attempt(None, f"no answer within {timeout:g} s", None, took())
    except (httpx.HTTPError, OSError) as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], None, took())


Poster = Callable[[Job, datetime], Attempt]


class Dispatcher:
    """Moves deliveries forward; ``run_once`` for tests and the CLI, ``start`` for a thread."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        resolve: Resolver = system_resolver,
        worker_id: str | None = None,
    ) -> None:
        self.db, self.settings, self.clock, self.resolve = db, settings, clock, resolve
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.workers = settings.webhook_workers
        self._pool = ThreadPoolExecutor(settings.webhook_workers, thread_name_prefix="webhook")
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._purged_at: datetime | None = None

    # --- claiming ----------------------------------------------------------------------------

    def _due(self, now: datetime) -> object:
        return or_(
            and_(D.status == WebhookState.PENDING, D.next_attempt_at <= now),
            and_(D.status == WebhookState.SENDING, D.lease_until <= now),  # its dispatcher died
        )

    def claim(self, *, limit: int) -> list[Job]:
        """Up to ``limit`` due deliveries, no endpoint beyond its concurrency."""
        now = self.clock()
        with self.db.session() as session:
            endpoint_ids = list(
                session.scalars(
                    select(D.endpoint_id)
                    .join(WebhookEndpoint, WebhookEndpoint.id == D.endpoint_id)
                    .where(self._due(now), WebhookEndpoint.enabled)  # type: ignore[arg-type]
                    .distinct()
                )
            )
        jobs: list[Job] = []
        for endpoint_id in sorted(endpoint_ids):
            if len(jobs) >= limit:
                break
            jobs += self._claim_for(endpoint_id, now, limit - len(jobs))
        return jobs

    def _claim_for(self, endpoint_id: int, now: datetime, room: int) -> list[Job]:
        postgres = self.db.dialect == "postgresql"
        lease = now + timedelta(seconds=2 * self.settings.webhook_timeout_seconds + 30)
        with self.db.session() as session:
            lock = select(WebhookEndpoint.id).where(
                WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled
            )
            if postgres:
                lock = lock.with_for_update(skip_locked=True)
            if session.scalar(lock) is None:
                return []  # another dispatcher is claiming for it right now (or it is disabled)
            busy = session.scalar(
                select(func.count()).where(
                    D.endpoint_id == endpoint_id,
                    D.status == WebhookState.SENDING,
                    D.lease_until > now,
                )
            )
            free = min(room, self.settings.webhook_concurrency - int(busy or 0))
            if free <= 0:
                return []
            due = self._due(now)
            pick = (
                select(D.id)
                .where(D.endpoint_id == endpoint_id, due)  # type: ignore[arg-type]
                .order_by(D.next_attempt_at, D.id)
                .limit(free)
            )
            if postgres:
                pick = pick.with_for_update(skip_locked=True)
            ids = list(session.scalars(pick))
            if not ids:
                return []
            claimed = list(
                session.scalars(
                    update(D)
                    .where(D.id.in_(ids), due)  # type: ignore[arg-type]
                    .values(
                        status=WebhookState.SENDING, lease_until=lease, claimed_by=self.worker_id,
                        attempts=D.attempts + 1,
                    )
                    .returning(D.id)
                )
            )  # fmt: skip
            return self._jobs(session, claimed)

    @staticmethod
    def _jobs(session: Session, ids: list[int]) -> list[Job]:
        if not ids:
            return []
        rows = session.execute(
            select(
                D.id, D.endpoint_id, WebhookEndpoint.url, WebhookEndpoint.secret,
                WebhookEvent.type, WebhookEvent.public_id, WebhookEvent.body, D.attempts,
                D.created_at,
            )
            .join(WebhookEndpoint, WebhookEndpoint.id == D.endpoint_id)
            .join(WebhookEvent, WebhookEvent.id == D.event_id)
            .where(D.id.in_(ids))
            .order_by(D.id)
        ).all()  # fmt: skip
        return [Job(*row) for row in rows]

    def deliver_now(self, delivery_id: int) -> Attempt:
        """Claim one pending delivery and make its attempt here (``webhooks test``)."""
        now = self.clock()
        lease = now + timedelta(seconds=2 * self.settings.webhook_timeout_seconds + 30)
        with self.db.session() as session:
            claimed = list(
                session.scalars(
                    update(D)
                    .where(D.id == delivery_id, D.status == WebhookState.PENDING)
                    .values(
                        status=WebhookState.SENDING, lease_until=lease, claimed_by=self.worker_id,
                        attempts=D.attempts + 1,
                    )
                    .returning(D.id)
                )
            )  # fmt: skip
            jobs = self._jobs(session, claimed)
        if not jobs:
            raise StateError(f"webhook delivery #{delivery_id} is not waiting to be sent")
        return self.deliver(jobs[0])

    # --- delivering --------------------------------------------------------------------------

    def deliver(self, job: Job) -> Attempt:
        """POST one claimed delivery and record what came of it."""
        attempt = post(job, settings=self.settings, now=self.clock(), resolve=self.resolve)
        self.record(job, attempt)
        return attempt

    def record(self, job: Job, attempt: Attempt) -> None:
        now = self.clock()
        window = timedelta(hours=self.settings.webhook_retry_hours)
        with self.db.session() as session:
            if session.get(D, job.delivery_id) is None:
                return  # the endpoint was removed meanwhile, with its log
            session.add(
                WebhookAttempt(
                    delivery_id=job.delivery_id, at=now, status_code=attempt.status_code,
                    error=attempt.error, excerpt=attempt.excerpt, duration_ms=attempt.duration_ms,
                )
            )  # fmt: skip
            values: dict[str, object] = {
                "last_status": attempt.status_code, "last_error": attempt.error,
                "response_excerpt": attempt.excerpt, "lease_until": None, "claimed_by": None,
            }  # fmt: skip
            if attempt.ok:
                values.update(status=WebhookState.DELIVERED, delivered_at=now, next_attempt_at=None)
            elif now - job.created_at >= window:
                values.update(status=WebhookState.FAILED, next_attempt_at=None)
            else:
                retry = now + backoff(job.attempt, job.delivery_id)
                values.update(status=WebhookState.PENDING, next_attempt_at=retry)
            session.execute(update(D).where(D.id == job.delivery_id).values(**values))
            self._note_endpoint(session, job.endpoint_id, attempt, now, window)

    @staticmethod
    def _note_endpoint(
        session: Session, endpoint_id: int, attempt: Attempt, now: datetime, window: timedelta
    ) -> None:
        """A 2xx ends the failure streak; a streak as long as the retry window disables it."""
        endpoint = WebhookEndpoint
        if attempt.ok:
            session.execute(
                update(endpoint)
                .where(endpoint.id == endpoint_id)
                .values(failing_since=None, last_success_at=now)
            )
            return
        session.execute(
            update(endpoint)
            .where(endpoint.id == endpoint_id)
            .values(
                failing_since=func.coalesce(endpoint.failing_since, now),
                last_failure_at=now,
                last_error=attempt.summary[:1000],
            )
        )
        row = session.get(endpoint, endpoint_id)
        if row is not None:
            session.refresh(row)
            since = row.failing_since
            if row.enabled and since is not None and now - since >= window:
                row.enabled = False
                row.disabled_reason = (
                    f"disabled automatically on {ev.iso(now)}: no delivery succeeded since "
                    f"{ev.iso(since)} (last: {attempt.summary[:300]})"
                )

    def run_once(self) -> int:
        """Claim what is due now, deliver it concurrently, wait for it; how many attempts."""
        jobs = self.claim(limit=self.workers)
        wait([self._submit(job) for job in jobs])
        self.purge()
        return len(jobs)

    def _submit(self, job: Job) -> Future[None]:
        with self._busy_lock:
            self._busy += 1
        return self._pool.submit(self._safe_deliver, job)

    def _safe_deliver(self, job: Job) -> None:
        try:
            self.deliver(job)
        except Exception:  # the lease runs out and another round retries it
            log.exception("webhook delivery %s could not be recorded", job.delivery_id)
        finally:
            with self._busy_lock:
                self._busy -= 1

    # --- retention ---------------------------------------------------------------------------

    def purge(self) -> int:
        """Once an hour: forget finished events older than ``webhook_log_days``."""
        now = self.clock()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return 0
        self._purged_at = now
        cutoff = now - timedelta(days=self.settings.webhook_log_days)
        open_ = exists().where(
            D.event_id == WebhookEvent.id,
            D.status.in_((WebhookState.PENDING, WebhookState.SENDING)),
        )
        with self.db.session() as session:
            gone = session.execute(
                delete(WebhookEvent).where(WebhookEvent.created_at < cutoff, ~open_)
            )
        return int(getattr(gone, "rowcount", 0) or 0)

    # --- the thread --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="newsletter-webhooks", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        log.info("webhook dispatcher %s started", self.worker_id)
        while not self._stop.is_set():
            try:
                with self._busy_lock:
                    free = self.workers - self._busy
                jobs = self.claim(limit=free) if free > 0 else []
                for job in jobs:
                    self._submit(job)
                self.purge()
            except Exception:  # a database hiccup: try again next round
                log.exception("webhook dispatcher round failed")
            self._stop.wait(self.settings.webhook_poll_seconds)

    def close(self, timeout: float = 30.0) -> None:
        """Stop claiming; requests in flight finish (each is bounded by the timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
