"""The sending benchmarks: ``python -m bench.run`` (``make bench``) and ``--quick`` (CI).

For each database (SQLite, and PostgreSQL when reachable) and audience size it
seeds synthetic subscribers, imports Issue 42, and runs whole campaigns in
worker processes through a SendGrid-compatible HTTP server, an SMTP sink and
the outbox; then ingests realistic SendGrid webhook events.  The same work is
measured with no database (the floors).  Results go to the terminal, to
``--json`` and, for the full run, into BENCHMARKS.md.

    python -m bench.run                    # 10k, 100k and 1M; about 16 minutes
    python -m bench.run --quick            # 2k recipients, under a minute
    python -m bench.run --sizes 10000 --backends postgresql --no-write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import campaign, dataset, floors, machine, report, webhooks
from .sinks import API_KEY, LeanSendGrid, RawSmtpSink

REPO = Path(__file__).resolve().parent.parent
PATHS = ("sendgrid", "smtp", "outbox", "webhooks", "floors")


@dataclass
class Plan:
    sizes: list[int]
    repeats: dict[int, int]  # SendGrid campaign runs per size
    postgres_workers: list[int]  # worker processes per SendGrid campaign on PostgreSQL
    smtp_size: int
    smtp_repeats: int
    outbox_size: int
    webhook_size: int  # the campaign size whose ledger the events refer to
    webhook_recipients: int  # recipients whose events make one ingest run
    webhook_repeats: int
    floor_sizes: list[int] = field(default_factory=list)
    floor_repeats: int = 3
    paths: frozenset[str] = frozenset(PATHS)

    def runs(self, size: int) -> int:
        return self.repeats.get(size, 1)


FULL = Plan(
    sizes=[10_000, 100_000, 1_000_000],
    repeats={10_000: 3, 100_000: 3, 1_000_000: 2},
    postgres_workers=[1, 2],
    smtp_size=10_000,
    smtp_repeats=3,
    outbox_size=2_000,
    webhook_size=100_000,
    webhook_recipients=20_000,
    webhook_repeats=3,
    floor_sizes=[10_000, 100_000, 1_000_000],
)
QUICK = Plan(
    sizes=[2_000],
    repeats={2_000: 1},
    postgres_workers=[1, 2],
    smtp_size=2_000,
    smtp_repeats=1,
    outbox_size=100,
    webhook_size=2_000,
    webhook_recipients=1_000,
    webhook_repeats=1,
    floor_sizes=[2_000],
    floor_repeats=1,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- one campaign -------------------------------------------------------------------


def summarize(
    reports: list[campaign.ChildReport], *, provider_calls: int, expected: int
) -> dict[str, Any]:
    """One campaign's figures from its workers' reports."""
    first = reports[0]
    start = min(r.t_start for r in reports)
    end = max(r.t_end for r in reports)
    recipients = sum(r.worker["accepted"] for r in reports)
    freeze = first.t_frozen - first.t_start
    statements = sum(sum(r.statements.values()) for r in reports)
    if recipients != expected:
        raise RuntimeError(f"{recipients} recipients accepted, expected {expected}")
    per = 1000 / recipients
    return {
        "recipients": recipients,
        "seconds": end - start,
        "freeze_seconds": freeze,
        "rate": recipients / (end - start),
        "send_rate": recipients / max(end - start - freeze, 1e-9),
        "statements": statements,
        "statements_freeze": sum(r.statements.get(campaign.FREEZE, 0) for r in reports),
        "statements_per_1000": statements * per,
        "provider_calls": provider_calls,
        "provider_calls_per_1000": provider_calls * per,
        "peak_rss_mb": max(r.peak_kb for r in reports) / 1024,
        "rss_growth_mb": max(r.peak_kb - r.ready_kb for r in reports) / 1024,
        "compilations": sum(r.compilations for r in reports),
        "cpu_us_per_recipient": sum(r.cpu_seconds for r in reports) / recipients * 1e6,
        "db_cpu_us_per_recipient": (
            sum(r.db_cpu_seconds or 0.0 for r in reports) / recipients * 1e6
            if all(r.db_cpu_seconds is not None for r in reports)
            else None
        ),
        "batches": sum(r.worker["batches"] for r in reports),
        "workers": len(reports),
    }


def ledger_counts(target: dataset.Target, campaign_id: int) -> dict[str, int]:
    engine = sa.create_engine(
        target.url,
        connect_args={"options": f"-csearch_path={target.schema}"} if target.schema else {},
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT status, count(*) FROM deliveries WHERE campaign_id = :c GROUP BY status"
                ),
                {"c": campaign_id},
            ).all()
    finally:
        engine.dispose()
    return {str(s): int(n) for s, n in rows}


def run_campaign(
    target: dataset.Target,
    size: int,
    transport: str,
    workers: int,
    overrides: dict[str, Any],
    sink: Any,
) -> tuple[dict[str, Any], int]:
    dataset.restore(target, size)
    cid = campaign.create_campaign(target)
    sink.reset()
    reports = campaign.run(campaign.Job(target, transport, overrides, cid, workers))
    if transport == "sendgrid":
        calls = sink.requests
        if sink.personalizations != size or len(sink.ledger_ids) != size or sink.duplicates:
            raise RuntimeError(
                f"SendGrid stand-in saw {sink.personalizations} personalizations, "
                f"{len(sink.ledger_ids)} distinct, {sink.duplicates} repeated; expected {size}"
            )
    elif transport == "smtp":
        calls = sink.messages
        if sink.messages != size or len(sink.recipients) != size:
            raise RuntimeError(f"SMTP sink took {sink.messages} messages, expected {size}")
    else:
        calls = size
    counts = ledger_counts(target, cid)
    if counts != {"accepted": size}:
        raise RuntimeError(f"ledger after the campaign: {counts}")
    return summarize(reports, provider_calls=calls, expected=size), cid


# --- the whole plan ------------------------------------------------------------------


def run(plan: Plan, backends: list[str], pg_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine.describe(pg_url),
        "campaigns": [],
        "floors": [],
        "webhooks": [],
    }
    started = time.monotonic()
    with LeanSendGrid() as sendgrid, RawSmtpSink() as smtp:
        sendgrid_settings = {"sendgrid_api_key": API_KEY, "sendgrid_host": sendgrid.url}
        smtp_settings = {"smtp_host": smtp.host, "smtp_port": smtp.port}
        for index, backend in enumerate(backends):
            for size in plan.sizes:
                with dataset.database(backend, pg_url=pg_url) as target:
                    began = time.monotonic()
                    dataset.prepare(target, size)
                    dataset.snapshot(target)
                    log(f"{backend} {size:,}: seeded in {time.monotonic() - began:.1f}s")
                    content = floors.issue_content(target)
                    if index == 0 and size in plan.floor_sizes and "floors" in plan.paths:
                        _floors(results, plan, target, content, size, sendgrid, smtp)
                    workers = plan.postgres_workers if backend == "postgresql" else [1]
                    if "sendgrid" not in plan.paths and "webhooks" not in plan.paths:
                        workers = []
                    last_campaign = 0
                    for count in workers:
                        runs = []
                        for _ in range(plan.runs(size)):
                            figures, last_campaign = run_campaign(
                                target, size, "sendgrid", count, sendgrid_settings, sendgrid
                            )
                            runs.append(figures)
                            log(
                                f"{backend} {size:,} sendgrid x{count}: "
                                f"{figures['rate']:,.0f}/s end to end, "
                                f"{figures['send_rate']:,.0f}/s sending, "
                                f"{figures['statements_per_1000']:.2f} SQL/1000, "
                                f"peak {figures['peak_rss_mb']:.0f} MB"
                            )
                        results["campaigns"].append(_entry("sendgrid", backend, size, count, runs))
                    if size == plan.webhook_size and "webhooks" in plan.paths and last_campaign:
                        _webhooks(results, plan, target, backend, last_campaign)
                    if size == plan.smtp_size:
                        _smtp_and_outbox(results, plan, target, backend, size, smtp, smtp_settings)
    results["machine"]["load_end"] = machine.load_average()
    results["elapsed_min"] = (time.monotonic() - started) / 60
    return results


def _entry(transport: str, backend: str, size: int, workers: int, runs: list[Any]) -> Any:
    return {
        "transport": transport,
        "backend": backend,
        "size": size,
        "workers": workers,
        "runs": runs,
    }


def _floors(
    results: dict[str, Any],
    plan: Plan,
    target: dataset.Target,
    content: Any,
    size: int,
    sendgrid: LeanSendGrid,
    smtp: RawSmtpSink,
) -> None:
    repeats = plan.floor_repeats if size < 1_000_000 else 1
    sendgrid_floors: list[tuple[str, str, bool]] = [
        ("sendgrid", "same payloads built and posted to the same server", True),
        ("sendgrid build only", "same payloads built and serialised, not posted", False),
    ]
    for kind, what, send in sendgrid_floors:

        def measure(send: bool = send) -> floors.FloorRun:
            return floors.sendgrid(target, content, size, sendgrid.url, API_KEY, send=send)

        runs = [_floor_figures(measure()) for _ in range(repeats)]
        results["floors"].append({"kind": kind, "what": what, "size": size, "runs": runs})
        log(f"floor {kind} {size:,}: {runs[0]['rate']:,.0f}/s")
    # One SMTP worker holds smtp_connections (2) connections: the floor pushes from as many
    # processes as the campaign it is compared with has workers, two connections each.
    workers = sorted({1, *plan.postgres_workers})
    for processes in workers if size == plan.smtp_size and "smtp" in plan.paths else ():
        runs = []
        for _ in range(plan.floor_repeats):
            smtp.reset()
            run = floors.smtp(
                target, content, size, smtp.host, smtp.port, processes=processes, connections=2
            )
            runs.append(_floor_figures(run))
        results["floors"].append(
            {
                "kind": report.smtp_floor(processes),
                "what": f"pre-built messages pushed into the {smtp.name} from {processes} "
                f"process{'es' if processes > 1 else ''} over 2 connections each (stock smtplib)",
                "size": size,
                "runs": runs,
            }
        )
        log(f"floor smtp {size:,} x{processes}: {runs[0]['rate']:,.0f}/s")
    if size == plan.smtp_size and "outbox" in plan.paths:
        runs = [
            _floor_figures(floors.outbox(target, content, plan.outbox_size))
            for _ in range(plan.floor_repeats)
        ]
        results["floors"].append(
            {
                "kind": "outbox",
                "what": "pre-built messages written by the outbox writer (fsync + rename)",
                "size": plan.outbox_size,
                "runs": runs,
            }
        )
        log(f"floor outbox {plan.outbox_size:,}: {runs[0]['rate']:,.0f}/s")


def _floor_figures(run: floors.FloorRun) -> dict[str, Any]:
    return {
        "messages": run.messages,
        "seconds": run.seconds,
        "rate": run.rate,
        "cpu_us_per_message": run.cpu_seconds / max(run.messages, 1) * 1e6,
        "calls": run.calls,
    }


def _smtp_and_outbox(
    results: dict[str, Any],
    plan: Plan,
    target: dataset.Target,
    backend: str,
    size: int,
    smtp: RawSmtpSink,
    smtp_settings: dict[str, Any],
) -> None:
    workers = plan.postgres_workers if backend == "postgresql" else [1]
    for count in workers if "smtp" in plan.paths else []:
        runs = []
        for _ in range(plan.smtp_repeats):
            figures, _ = run_campaign(target, size, "smtp", count, smtp_settings, smtp)
            runs.append(figures)
            log(f"{backend} {size:,} smtp x{count}: {figures['rate']:,.0f}/s end to end")
        results["campaigns"].append(_entry("smtp", backend, size, count, runs))
    if "outbox" not in plan.paths:
        return
    # The outbox fsyncs every message: a smaller audience of the same database.
    with dataset.database(backend, pg_url=_pg_url(target)) as small:
        dataset.prepare(small, plan.outbox_size)
        dataset.snapshot(small)
        figures, _ = run_campaign(small, plan.outbox_size, "outbox", 1, {}, _NoSink())
        log(f"{backend} {plan.outbox_size:,} outbox: {figures['rate']:,.0f}/s end to end")
        results["campaigns"].append(_entry("outbox", backend, plan.outbox_size, 1, [figures]))


def _pg_url(target: dataset.Target) -> str:
    return target.url if target.backend == "postgresql" else dataset.PG_URL


class _NoSink:
    def reset(self) -> None:
        pass


def _webhooks(
    results: dict[str, Any], plan: Plan, target: dataset.Target, backend: str, campaign_id: int
) -> None:
    """Events for disjoint slices of the last campaign's ledger: every run ingests fresh events."""
    slices = plan.webhook_repeats + 1
    recipients = webhooks.ledger(target, campaign_id, plan.webhook_recipients * slices)
    chunks = [
        recipients[i * plan.webhook_recipients : (i + 1) * plan.webhook_recipients]
        for i in range(slices)
    ]
    direct = []
    for chunk in chunks[:-1]:
        bodies = webhooks.posts(webhooks.events_for(chunk, campaign_id))
        outcome = webhooks.ingest_direct(target, bodies)
        direct.append(_webhook_figures(outcome))
        log(f"{backend} webhooks direct: {outcome.rate:,.0f} events/s")
    results["webhooks"].append({"backend": backend, "mode": "direct", "runs": direct})
    bodies = webhooks.posts(webhooks.events_for(chunks[-1], campaign_id))
    outcome = webhooks.ingest_http(target, bodies)
    log(f"{backend} webhooks http: {outcome.rate:,.0f} events/s")
    results["webhooks"].append(
        {"backend": backend, "mode": "HTTP (uvicorn, signed)", "runs": [_webhook_figures(outcome)]}
    )


def _webhook_figures(run: webhooks.IngestRun) -> dict[str, Any]:
    return {
        "events": run.events,
        "posts": run.posts,
        "seconds": run.seconds,
        "rate": run.rate,
        "stored": run.stored,
        "duplicates": run.duplicates,
        "suppressed": run.suppressed,
        "statements_per_1000": run.statements / max(run.events, 1) * 1000,
        "cpu_us_per_event": run.cpu_seconds / max(run.events, 1) * 1e6,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k recipients, under a minute")
    parser.add_argument("--sizes", help="comma-separated audience sizes (overrides the plan)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--paths", default=",".join(PATHS), help="a subset of " + ",".join(PATHS))
    parser.add_argument("--repeats", type=int, help="runs per measurement (overrides the plan)")
    parser.add_argument("--workers", help="comma-separated worker counts on PostgreSQL")
    parser.add_argument("--pg-url", default=dataset.PG_URL)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md (--quick too)")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
        plan = Plan(**{**plan.__dict__, "sizes": sizes, "floor_sizes": sizes})
        if plan.smtp_size not in sizes:
            plan.smtp_size = sizes[0]
        if plan.webhook_size not in sizes:
            plan.webhook_size = sizes[0]
            plan.webhook_recipients = min(
                plan.webhook_recipients, sizes[0] // (plan.webhook_repeats + 1)
            )
    if args.repeats:
        plan.repeats = dict.fromkeys(plan.sizes, args.repeats)
        plan.smtp_repeats = plan.webhook_repeats = plan.floor_repeats = args.repeats
    if args.workers:
        plan.postgres_workers = [int(w) for w in args.workers.split(",")]
    plan.paths = frozenset(p for p in args.paths.split(",") if p)
    unknown = plan.paths - set(PATHS)
    if unknown:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not dataset.postgres_available(args.pg_url):
        log(f"PostgreSQL not reachable at {args.pg_url}: SQLite only")
        backends.remove("postgresql")
    results = run(plan, backends, args.pg_url)
    shown = [
        a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--no-write", "--write")
    ]
    if "--json" in shown:  # where the raw results went is not part of the measurement
        del shown[shown.index("--json") : shown.index("--json") + 2]
    results["command"] = " ".join(["python -m bench.run", *shown])
    print(report.terminal(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if (args.write or not args.quick) and not args.no_write:
        report.write(args.output, results)
        log(f"wrote {args.output}")
    return results


if __name__ == "__main__":
    main()
