"""Background jobs of the web process: an admin upload becomes a job the page then watches.

Why a thread of the web process rather than the worker or the scheduler: an
import is started by a person who waits for it, its input is a file this
process just received, and nothing else needs it; the web app keeps answering
(its other requests run in their own threads, and the job commits in chunks
so the database is never held for long).  One job runs at a time
(``max_workers=1``): a second upload waits its turn, queued.

A job that dies is never left "running": an exception marks it failed with
its reason, and a process that is killed stops the heartbeat (``updated_at``,
touched every few seconds while the job runs), so anyone reading the job
after ``STALE_AFTER`` sees it marked failed ("interrupted").  Re-running an
interrupted import is safe: imports are idempotent.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.db import Database
from newsletter.errors import NewsletterError, NotFoundError
from newsletter.models.base import utcnow
from newsletter.models.jobs import Job, JobState

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=60)
INTERRUPTED = "interrupted: the process running it stopped (run the import again; it is safe)"
Work = Callable[["Reporter"], dict[str, Any]]  # does the job, returns its report


def create(session: Session, *, kind: str, owner: str, label: str) -> Job:
    job = Job(kind=kind, owner=owner, label=label[:300], state=JobState.QUEUED.value, done=0)
    session.add(job)
    session.flush()
    return job


def reap_stale(session: Session) -> int:
    """Mark failed every unfinished job whose heartbeat stopped; the number marked."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
               Job.updated_at < now - STALE_AFTER)
        .values(state=JobState.FAILED.value, error=INTERRUPTED, updated_at=now)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return int(getattr(result, "rowcount", 0) or 0)


def get(session: Session, job_id: int) -> Job:
    """A job, after reaping stale ones; ``NotFoundError`` if there is none."""
    reap_stale(session)
    job = session.scalar(select(Job).where(Job.id == job_id))
    if job is None:
        raise NotFoundError(f"no job #{job_id}")
    session.refresh(job)
    return job


def as_dict(job: Job) -> dict[str, Any]:
    """What the progress bar polls (small: the report only once the job is done)."""
    total = job.total
    percent = 100.0 if job.state == JobState.DONE else (100.0 * job.done / total if total else 0.0)
    return {
        "id": job.id, "kind": job.kind, "state": job.state, "label": job.label,
        "done": job.done, "total": total, "percent": round(min(percent, 100.0), 1),
        "error": job.error, "finished": job.state in (JobState.DONE, JobState.FAILED),
    }  # fmt: skip


class Reporter:
    """Handed to the work: records progress (at most a few writes a second) and beats."""

    def __init__(self, db: Database, job_id: int, *, every: float = 0.5) -> None:
        self.db, self.job_id, self.every = db, job_id, every
        self._last = 0.0
        self._lock = threading.Lock()

    def progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done != total and now - self._last < self.every:
            return
        self._last = now
        self._write(done=done, total=total)

    def beat(self) -> None:
        self._write()

    def _write(self, **values: Any) -> None:
        with self._lock, self.db.session() as session:
            session.execute(update(Job).where(Job.id == self.job_id)
                            .values(updated_at=utcnow(), **values))  # fmt: skip


class JobRunner:
    """One worker thread running jobs in order; ``submit`` returns at once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsletter-job")

    def submit(self, job_id: int, work: Work, *, folder: Path | None = None) -> None:
        """Run ``work`` as job ``job_id``; ``folder`` (its uploaded files) is removed after."""
        self._pool.submit(self._run, job_id, work, folder)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    def _run(self, job_id: int, work: Work, folder: Path | None) -> None:
        reporter = Reporter(self.db, job_id)
        stop = threading.Event()
        heart = threading.Thread(target=self._beat, args=(reporter, stop), daemon=True)
        try:
            self._set(job_id, state=JobState.RUNNING.value)
            heart.start()
            report = work(reporter)
            self._set(job_id, state=JobState.DONE.value, report=report)
        except NewsletterError as exc:
            self._set(job_id, state=JobState.FAILED.value, error=str(exc))
        except Exception as exc:  # a job must end failed, never "running"
            log.exception("job %s failed", job_id)
            reason = f"internal error ({type(exc).__name__}); see the server log"
            self._set(job_id, state=JobState.FAILED.value, error=reason)
        finally:
            stop.set()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _beat(reporter: Reporter, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                reporter.beat()
            except Exception:  # a missed beat only risks a false "interrupted"
                log.warning("job heartbeat failed", exc_info=True)

    def _set(self, job_id: int, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(Job).where(Job.id == job_id)
                            .values(updated_at=utcnow(), **values))  # fmt: skip
