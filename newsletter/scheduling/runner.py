"""The scheduler process: leader election, APScheduler wake-ups, an in-process worker.

APScheduler (3.11, ``BackgroundScheduler``) keeps its jobs in the project's
database through ``SQLAlchemyJobStore`` (table ``apscheduler_jobs``, in
``settings.database_schema`` on PostgreSQL), so wake-ups survive restarts.  The
jobs are only alarms: a ``sweep`` every ``sweep_seconds`` plus one date job per
scheduled campaign and per recurring rule, kept in step with the rows after
every tick.  Each alarm runs the same ``tick`` (``steps.tick``), which reads
the truth from the database.  APScheduler's own misfire logic is switched off
(``misfire_grace_time=None``, ``coalesce=True``): however late an alarm fires it
runs once, and ``steps`` decides between "start late" and "missed" with
``settings.misfire_grace_seconds``.

Jobs in a persistent store must name their function by import path and carry
only picklable arguments, so they call the module-level ``wake(key)``, which
finds the live runtime for that database in ``_ACTIVE``; no settings (and no
secrets) are ever pickled into the job table.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from newsletter.automation.webhooks.dispatcher import Dispatcher
from newsletter.config import Settings
from newsletter.db import Database, redact
from newsletter.errors import DatabaseError, NewsletterError
from newsletter.models import Campaign, CampaignStatus, Schedule
from newsletter.scheduling.leader import LeaderLock, leader_lock
from newsletter.scheduling.steps import DueReport, RunReport, Starter, tick
from newsletter.sending import abtest, service
from newsletter.sending.engine import system_now
from newsletter.transports import Messenger

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
WAKEUP_PREFIXES = ("campaign-", "schedule-", "abtest-")
BOUNCE_JOB = "bounces-poll"
PURGE_JOB = "tracking-purge"
SOURCES_JOB = "sources-poll"
LINKS_JOB = "link-check"
PURGE_HOURS = 6  # the raw click/open log is trimmed to tracking_retention_days this often
MAX_WAKEUPS = 200  # date jobs kept ahead; anything further is caught by the sweep

_ACTIVE: dict[str, SchedulerRuntime] = {}
_ACTIVE_LOCK = threading.Lock()


def store_key(settings: Settings) -> str:
    """Which database a job belongs to (password redacted: it is stored in the job row)."""
    return f"{redact(settings.database_url)}#{settings.database_schema or ''}"


def poll_bounces(key: str) -> None:
    """The bounce-mailbox job (only when ``bounce_mailbox_host`` is set): one poll, leader only."""
    with _ACTIVE_LOCK:
        runtime = _ACTIVE.get(key)
    if runtime is not None:
        runtime.poll_bounces()


def purge_tracking(key: str) -> None:
    """The retention job: raw click and open events older than the limit are deleted."""
    with _ACTIVE_LOCK:
        runtime = _ACTIVE.get(key)
    if runtime is not None:
        runtime.purge_tracking()


def poll_sources(key: str) -> None:
    """The library-sources job: poll every source whose next poll is due (leader only)."""
    with _ACTIVE_LOCK:
        runtime = _ACTIVE.get(key)
    if runtime is not None:
        runtime.poll_sources()


def check_links(key: str) -> None:
    """The link-health job: check the library's links not checked for ``link_check_hours``."""
    with _ACTIVE_LOCK:
        runtime = _ACTIVE.get(key)
    if runtime is not None:
        runtime.check_links()


def wake(key: str) -> None:
    """What every APScheduler job calls: one tick of the runtime leading that database."""
    with _ACTIVE_LOCK:
        runtime = _ACTIVE.get(key)
    if runtime is None:
        log.warning("wake-up for %s but no scheduler is leading it in this process", key)
        return
    runtime.tick()


class OwnEngineJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The stock store, except that shutting the scheduler down leaves our engine alone."""

    def shutdown(self) -> None:
        return None


@dataclass(frozen=True)
class RunOptions:
    """Knobs of ``newsletter scheduler run`` (tests use sub-second values)."""

    sweep_seconds: float = 30.0
    retry_seconds: float = 5.0
    worker: bool = True
    webhooks: bool = True  # a webhook dispatcher thread (every process, leader or not)


class WorkerThread:
    """``service.open_worker`` + ``Worker.run(stop)`` on a thread; stopping finishes its batch."""

    def __init__(self, db: Database, settings: Settings, messenger: Messenger | None) -> None:
        self.db, self.settings, self.messenger = db, settings, messenger
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="newsletter-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with service.open_worker(self.db, self.settings, messenger=self.messenger) as worker:
                log.info("in-process worker sending through %s", worker.messenger.name)
                worker.run(self.stop)
        except DatabaseError as exc:  # SQLite: a 'newsletter worker' already holds the send lock
            log.warning("no in-process worker (%s); this scheduler only starts campaigns", exc)
        except Exception:
            log.exception("in-process worker crashed; campaigns still start, nothing sends here")

    def join(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join()


class SchedulerRuntime:
    """One scheduler process's life: wait for leadership, lead, step down, shut down cleanly."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        options: RunOptions | None = None,
        clock: Callable[[], datetime] = system_now,
        start: Starter | None = None,
        messenger: Messenger | None = None,
        on_tick: Callable[[list[RunReport], DueReport], None] | None = None,
    ) -> None:
        self.db, self.settings = db, settings
        self.options = options or RunOptions()
        self.clock, self.start, self.on_tick = clock, start, on_tick
        self.key = store_key(settings)
        self.leader: LeaderLock = leader_lock(db, settings.database_schema)
        self.worker = WorkerThread(db, settings, messenger) if self.options.worker else None
        self.dispatcher = Dispatcher(db, settings) if self.options.webhooks else None
        self.leading = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self._tick_lock = threading.Lock()

    # --- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` (SIGTERM): follow, lead while the lock is ours, then clean up."""
        try:
            if self.dispatcher is not None:
                self.dispatcher.start()  # its own thread: a slow endpoint never holds up sending
            if self.worker is not None and self.db.dialect != "sqlite":
                self.worker.start()  # PostgreSQL: any number of workers may send at once
            while not stop.is_set():
                if self.leader.try_acquire():
                    self._lead(stop)
                stop.wait(self.options.retry_seconds)
        finally:
            self._shutdown()

    def _lead(self, stop: threading.Event) -> None:
        """Run APScheduler while the lock is ours; any failure steps down so another can lead."""
        log.info("became leader for %s", self.key)
        if self.worker is not None and not self.worker.started:
            self.worker.start()  # SQLite allows one worker: the leader's
        try:
            self._start_apscheduler()
            self._safe_tick()
            self.leading.set()  # after the first tick: wake-up jobs are aimed
            while not stop.wait(self.options.retry_seconds):
                if not self.leader.still_held():
                    break
        except Exception:
            log.exception("leading failed; stepping down, will retry")
            self.leader.release()
        finally:
            self._stop_apscheduler()

    def _shutdown(self) -> None:
        self._stop_apscheduler()
        if self.worker is not None:
            self.worker.join()
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.leader.release()
        log.info("scheduler stopped; leadership released")

    # --- APScheduler ----------------------------------------------------------------

    def _start_apscheduler(self) -> None:
        schema = self.settings.database_schema if self.db.dialect == "postgresql" else None
        store = OwnEngineJobStore(engine=self.db.engine, tablename=JOB_TABLE, tableschema=schema)
        scheduler = BackgroundScheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        with _ACTIVE_LOCK:
            _ACTIVE[self.key] = self
        scheduler.start()
        scheduler.add_job(
            wake, "interval", seconds=self.options.sweep_seconds, args=[self.key],
            id="sweep", name="sweep", replace_existing=True,
        )  # fmt: skip
        if self.settings.bounce_mailbox_host:
            scheduler.add_job(
                poll_bounces, "interval", minutes=self.settings.bounce_poll_minutes,
                args=[self.key], id=BOUNCE_JOB, name=BOUNCE_JOB, replace_existing=True,
            )  # fmt: skip
        elif scheduler.get_job(BOUNCE_JOB) is not None:
            scheduler.remove_job(BOUNCE_JOB)  # the mailbox was unconfigured since
        scheduler.add_job(
            purge_tracking, "interval", hours=PURGE_HOURS, args=[self.key], id=PURGE_JOB,
            name=PURGE_JOB, replace_existing=True, next_run_time=self.clock(),
        )  # fmt: skip
        scheduler.add_job(
            poll_sources, "interval", minutes=self.settings.sources_poll_minutes,
            args=[self.key], id=SOURCES_JOB, name=SOURCES_JOB, replace_existing=True,
        )  # fmt: skip
        scheduler.add_job(
            check_links, "interval", hours=self.settings.link_check_hours, args=[self.key],
            id=LINKS_JOB, name=LINKS_JOB, replace_existing=True,
        )  # fmt: skip
        self._scheduler = scheduler

    def _stop_apscheduler(self) -> None:
        """Let a tick in progress finish, then stop APScheduler (its jobs stay stored).

        ``BackgroundScheduler.shutdown(wait=True)`` holds its job-store lock while
        it waits for running jobs, and a tick re-aims jobs through that lock: so
        the tick lock is taken first and ``_scheduler`` cleared under it, after
        which a late tick finds nothing to do instead of deadlocking.
        """
        with _ACTIVE_LOCK:
            if _ACTIVE.get(self.key) is self:
                del _ACTIVE[self.key]
        with self._tick_lock:
            scheduler, self._scheduler = self._scheduler, None
        self.leading.clear()
        if scheduler is not None:
            scheduler.shutdown(wait=True)

    # --- ticks ----------------------------------------------------------------------

    def tick(self) -> tuple[list[RunReport], DueReport]:
        """One pass of the steps, then re-aim the wake-up jobs at what is due next."""
        with self._tick_lock:
            if self._scheduler is None:  # stepped down (or stopping): the new leader ticks
                return [], DueReport()
            now = self.clock()
            runs, due = tick(self.db, self.settings, now, start=self.start)
            self._tick_sequences(now)
            self.sync_jobs(now)
        if self.on_tick is not None:
            self.on_tick(runs, due)
        return runs, due

    def _tick_sequences(self, now: datetime) -> None:
        """Enrol and queue due sequence emails (every sweep: a welcome goes within a minute)."""
        from newsletter.automation import sequences

        try:
            sequences.tick(self.db, self.settings, now)
        except Exception:  # the next sweep retries; campaigns must still start
            log.exception("sequence tick failed")

    def purge_tracking(self) -> None:
        """Delete raw engagement events past ``tracking_retention_days`` (the sums stay)."""
        from newsletter.tracking.engagement import purge

        before = self.clock() - timedelta(days=self.settings.tracking_retention_days)
        try:
            with self.db.session() as session:
                deleted = purge(session=session, before=before)
        except Exception:
            log.exception("tracking purge failed; retried at the next interval")
            return
        if deleted:
            log.info("tracking purge: %d events older than %s deleted", deleted, before.date())

    def poll_sources(self) -> None:
        """Poll the due library sources; each failure is the source's last result, not ours."""
        from newsletter.sources.poll import poll_due

        try:
            results = poll_due(self.db, self.settings, now=self.clock)
        except Exception:
            log.exception("sources poll failed; retried at the next interval")
            return
        for result in results:
            log.info("source #%d %s: %s", result.source_id, result.result, result.message)

    def check_links(self) -> None:
        """Check every library link not checked within ``link_check_hours``."""
        from newsletter.resources.links import check_links

        older = timedelta(hours=self.settings.link_check_hours)
        try:
            report = check_links(self.db, self.settings, now=self.clock, older_than=older)
        except Exception:
            log.exception("link check failed; retried at the next interval")
            return
        log.info("link check: %d checked, %d dead, %d moved", report.checked, report.dead,
                 report.moved)  # fmt: skip

    def poll_bounces(self) -> None:
        """Read the bounce mailbox once; a failure is logged and retried at the next interval."""
        from newsletter.bounces.apply import BounceProcessor
        from newsletter.bounces.mailbox import poll_mailbox

        try:
            report = poll_mailbox(BounceProcessor(self.db, self.settings), self.settings)
        except NewsletterError as exc:
            log.warning("bounce mailbox: %s", exc)
            return
        except Exception:
            log.exception("bounce mailbox poll failed")
            return
        log.info("bounce mailbox: %d seen, %d stored", report.seen, report.stored)

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception:  # the sweep retries; a broken tick must not kill the leader
            log.exception("scheduler tick failed")

    def sync_jobs(self, now: datetime) -> None:
        """One date job per future due time in the rows; stale ones removed."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        wanted = self._wakeups(now)
        current = {j.id: j for j in scheduler.get_jobs() if j.id.startswith(WAKEUP_PREFIXES)}
        for job_id in current.keys() - wanted.keys():
            with contextlib.suppress(JobLookupError):  # it fired meanwhile
                scheduler.remove_job(job_id)
        for job_id, at in wanted.items():
            job = current.get(job_id)
            if job is None or job.next_run_time != at:
                scheduler.add_job(
                    wake, "date", run_date=at, args=[self.key], id=job_id, name=job_id,
                    replace_existing=True,
                )  # fmt: skip

    def _wakeups(self, now: datetime) -> dict[str, datetime]:
        with self.db.session() as session:
            due_campaigns = session.execute(
                select(Campaign.id, Campaign.scheduled_at)
                .where(Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at > now)
                .order_by(Campaign.scheduled_at)
                .limit(MAX_WAKEUPS)
            ).all()
            rules = session.execute(
                select(Schedule.id, Schedule.next_run_at)
                .where(Schedule.enabled.is_(True), Schedule.next_run_at > now)
                .order_by(Schedule.next_run_at)
                .limit(MAX_WAKEUPS)
            ).all()
            tests = abtest.next_decision(session=session, now=now, limit=MAX_WAKEUPS)
        wanted = {f"campaign-{cid}": at for cid, at in due_campaigns if at is not None}
        wanted |= {f"schedule-{sid}": at for sid, at in rules if at is not None}
        wanted |= {f"abtest-{cid}": at for cid, at in tests}  # subject tests' winner picks
        return wanted

    def stored_job_ids(self) -> list[str]:
        """The ids APScheduler holds for this runtime right now (for ``list`` and tests)."""
        scheduler = self._scheduler
        return sorted(j.id for j in scheduler.get_jobs()) if scheduler is not None else []


class InProcess:
    """A ``SchedulerRuntime`` with its worker on a thread beside another server (``serve``).

    On the embedded default one process is all there is, so the web app starts
    what is due and sends it; deployments with separate workers say
    ``--no-worker``.  Stopping finishes the batch in hand and releases the lock.
    """

    def __init__(self, db: Database, settings: Settings, options: RunOptions | None = None):
        self.runtime = SchedulerRuntime(db, settings, options=options)
        self.stop_event = threading.Event()
        self._thread = threading.Thread(
            target=self.runtime.run, args=(self.stop_event,), name="newsletter-scheduler",
            daemon=True,
        )  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self.stop_event.set()
        self._thread.join(timeout)
