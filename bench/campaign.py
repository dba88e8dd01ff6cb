"""One whole campaign of Issue 42 in worker processes, measured from the inside.

The parent creates the campaign and starts ``workers`` child processes (spawned,
so each is a fresh interpreter like a real ``newsletter worker``).  Every child
connects, builds its worker and says it is ready; then the first child freezes
the audience (``service.start``: preflight, ledger insert, batches) and all of
them drain the campaign through the real engine, store, preparer and
messenger.  Each child reports its own clock readings, SQL statements (a
``before_cursor_execute`` listener on its engine: an ``executemany`` counts
once), commits, CPU time, peak RSS (``VmHWM``) and MJML compilations.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import create_engine, event, text

from .dataset import Target

FREEZE = "freeze"
SEND = "send"


@dataclass(frozen=True)
class Job:
    target: Target
    transport: str  # "sendgrid", "smtp" or "outbox"
    settings: dict[str, Any]  # overrides: provider address, batch size, ...
    campaign_id: int
    workers: int = 1


@dataclass
class ChildReport:
    index: int
    ready_kb: int = 0  # VmRSS once imports, connection and worker are set up
    peak_kb: int = 0  # VmHWM at the end
    t_start: float = 0.0  # time.monotonic(): CLOCK_MONOTONIC, comparable across processes
    t_frozen: float = 0.0
    t_end: float = 0.0
    cpu_seconds: float = 0.0
    db_cpu_seconds: float | None = None  # this worker's PostgreSQL backends, during the campaign
    statements: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    compilations: int = 0
    worker: dict[str, Any] = field(default_factory=dict)  # the engine's WorkerStats, as a dict
    error: str | None = None


def proc_status(key: str) -> int:
    """A ``/proc/self/status`` figure in kB (``VmHWM``, ``VmRSS``); ru_maxrss where absent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_cpu(target: Target, application_name: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends of one worker (same machine only).

    Asked through a connection of its own, so it is not counted as the worker's SQL.
    """
    engine = create_engine(target.url, connect_args={"options": f"-csearch_path={target.schema}"})
    try:
        with engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                {"a": application_name},
            ).scalars()
            total = 0.0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as fh:
                        fields = fh.read().rpartition(")")[2].split()
                except OSError:
                    continue  # not on this machine, or gone
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            return total
    finally:
        engine.dispose()


def child(
    job: Job,
    index: int,
    ready: Any,
    begin: Any,
    frozen: Any,
    results: Any,
) -> None:
    """Entry point of one worker process (module-level so ``spawn`` can import it)."""
    report = ChildReport(index=index)
    try:
        _child(job, index, ready, begin, frozen, report)
    except BaseException as exc:  # report, never hang the parent
        import traceback

        report.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    results.put(asdict(report))


def _child(job: Job, index: int, ready: Any, begin: Any, frozen: Any, report: ChildReport) -> None:
    from newsletter.db import connect
    from newsletter.sending import service
    from newsletter.sending.prepare import IssuePreparer

    postgres = job.target.backend == "postgresql"
    name = f"nlbench_{job.campaign_id}_{index}"
    overrides = dict(job.settings)
    if postgres:  # tag this worker's backends so their CPU can be read
        overrides["database_url"] = f"{job.target.url}?application_name={name}"
    settings = job.target.settings(transport=job.transport, **overrides)
    db = connect(settings)
    phase = [FREEZE]
    counts = {FREEZE: 0, SEND: 0}

    def count(*_args: Any) -> None:
        counts[phase[0]] += 1

    def commit(*_args: Any) -> None:
        report.commits += 1

    event.listen(db.engine, "before_cursor_execute", count)
    event.listen(db.engine, "commit", commit)

    preparers: list[IssuePreparer] = []
    build = service.preparer_for

    def preparer_for(*args: Any, **kwargs: Any) -> IssuePreparer:
        made = build(*args, **kwargs)
        preparers.append(made)
        return made

    service.preparer_for = preparer_for
    try:
        with service.open_worker(db, settings) as worker:
            worker.policy = replace(worker.policy, idle_poll_seconds=0.05)
            report.ready_kb = proc_status("VmRSS")
            db_cpu0 = backend_cpu(job.target, name) if postgres else 0.0
            ready.set()
            if index == 0:
                begin.wait()
                cpu0 = _cpu()
                report.t_start = time.monotonic()
                if not service.start(db, settings, job.campaign_id):
                    raise RuntimeError(f"campaign {job.campaign_id} did not start")
                report.t_frozen = time.monotonic()
                frozen.set()
            else:
                frozen.wait()
                cpu0 = _cpu()
                report.t_start = report.t_frozen = time.monotonic()
            phase[0] = SEND
            stats = worker.run(
                threading.Event(), until=service.campaign_finished(db, job.campaign_id)
            )
            report.t_end = time.monotonic()
            report.cpu_seconds = _cpu() - cpu0
            if postgres:
                report.db_cpu_seconds = backend_cpu(job.target, name) - db_cpu0
    finally:
        service.preparer_for = build
        db.dispose()
    report.peak_kb = proc_status("VmHWM")
    report.statements = dict(counts)
    report.compilations = sum(p.renderer.stats.compilations for p in preparers)
    report.worker = asdict(stats)


def create_campaign(target: Target) -> int:
    from newsletter.db import connect
    from newsletter.sending import campaigns

    db = connect(target.settings())
    try:
        with db.session() as session:
            return campaigns.create_campaign(42, session=session).id
    finally:
        db.dispose()


def run(job: Job, *, timeout: float = 3600) -> list[ChildReport]:
    """Run the campaign in ``job.workers`` processes; their reports, first child first."""
    ctx = mp.get_context("spawn")
    ready = [ctx.Event() for _ in range(job.workers)]
    begin, frozen = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=child, args=(job, i, ready[i], begin, frozen, results), daemon=True)
        for i in range(job.workers)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 120
    for flag in ready:
        flag.wait(max(0.0, deadline - time.monotonic()))
    begin.set()
    reports: list[ChildReport] = []
    end = time.monotonic() + timeout
    while len(reports) < job.workers:
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        try:
            reports.append(ChildReport(**results.get(timeout=min(remaining, 5))))
        except Exception:  # queue.Empty: check the children are alive
            if not any(p.is_alive() for p in procs) and results.empty():
                break
            continue
        if reports[-1].error:
            frozen.set()  # release waiting siblings
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    errors = [r.error for r in reports if r.error]
    if errors or len(reports) < job.workers:
        raise RuntimeError(
            f"campaign workers failed ({len(reports)}/{job.workers} reported): "
            + "\n".join(e or "" for e in errors)
        )
    return sorted(reports, key=lambda r: r.index)
