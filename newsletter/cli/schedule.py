"""``newsletter schedule`` (admins plan sends) and ``newsletter scheduler`` (fires them)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from newsletter.cli.common import AppContext, app_context, console, progress_bar
from newsletter.db import Database, redact
from newsletter.models import CampaignStatus
from newsletter.scheduling import admin, steps
from newsletter.scheduling.runner import RunOptions, SchedulerRuntime
from newsletter.scheduling.steps import DueReport, RunReport
from newsletter.scheduling.times import describe, parse_at, parse_date, zone
from newsletter.sending import campaigns
from newsletter.sending.engine import system_now


class _IssueFirst(TyperGroup):
    """``newsletter schedule 42 --at ...`` means ``newsletter schedule issue 42 --at ...``.

    A group cannot take a positional argument *and* subcommands, so a leading
    number (never a command name) is routed to the ``issue`` command.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Typer vendors click
        if args and args[0][:1].isdigit():
            args = ["issue", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_IssueFirst,
    help="Schedule sends: 'newsletter schedule 42 --at \"2018-04-03 09:00\" --tz America/New_York'",
    no_args_is_help=True,
)
scheduler_app = typer.Typer(help="The process that starts scheduled sends.", no_args_is_help=True)

TZ_HELP = "IANA time zone of --at (default: the 'timezone' setting)."


def _tz_name(app_ctx: AppContext, tz: str | None) -> str:
    return zone(tz or app_ctx.settings.timezone).key


@app.command("issue")
def schedule_issue(
    ctx: typer.Context,
    issue: int = typer.Argument(..., help="Issue number."),
    at: str = typer.Option(..., "--at", help="Local date and time, e.g. '2018-04-03 09:00'."),
    tz: str | None = typer.Option(None, "--tz", help=TZ_HELP),
    topic: list[str] = typer.Option([], help="Only subscribers who chose this topic; repeat."),
    name: str | None = typer.Option(None, help="Defaults to the issue title."),
    resend: bool = typer.Option(
        False, "--resend", help="Send even if this issue already went to this audience."
    ),
    local_time: str | None = typer.Option(
        None,
        "--local-time",
        help="Arrive at this hour (HH:MM) in each subscriber's own time zone on the date --at "
        "gives (e.g. --at 2027-03-28 --local-time 09:00).",
    ),
) -> None:
    """Schedule one send of an issue (a 'scheduled' campaign due at --at)."""
    app_ctx = app_context(ctx)
    settings, tz_name = app_ctx.settings, _tz_name(app_ctx, tz)
    campaigns.check_topics(topic, [t.name for t in settings.topics])
    if local_time is not None:
        _schedule_local(app_ctx, issue, at, local_time, topic, name, resend)
        return
    due = parse_at(at, tz_name)
    with app_ctx.db.session() as session:
        campaign = admin.schedule_issue(
            session, issue, at=due, now=system_now(), topics=topic, name=name,
            grace_seconds=settings.misfire_grace_seconds, resend=resend,
        )  # fmt: skip
        campaign_id = campaign.id
    console.print(
        f"campaign #{campaign_id} scheduled: issue {issue} at {describe(due, zone(tz_name))}",
        highlight=False,
    )


def _schedule_local(
    app_ctx: AppContext, issue: int, on: str, local_time: str, topics: list[str],
    name: str | None, resend: bool,
) -> None:  # fmt: skip
    settings = app_ctx.settings
    day = parse_date(on)
    with app_ctx.db.session() as session:
        campaign = admin.schedule_local(
            session, issue, on=day, local_time=local_time, default_tz=settings.timezone,
            now=system_now(), grace_seconds=settings.misfire_grace_seconds, topics=topics,
            name=name, resend=resend,
        )  # fmt: skip
        campaign_id, due, clock = campaign.id, campaign.scheduled_at, campaign.local_time
    assert due is not None
    console.print(
        f"campaign #{campaign_id} scheduled: issue {issue} at {clock} local time on {day} in "
        f"each subscriber's zone (first zone at {due:%Y-%m-%d %H:%M} UTC)",
        highlight=False,
    )


@app.command("add-recurring")
def add_recurring(
    ctx: typer.Context,
    rule: str = typer.Option(
        ..., "--rule", help="'first tuesday 09:00', 'every monday 08:00', or cron '0 9 * * 1'."
    ),
    tz: str | None = typer.Option(None, "--tz", help="IANA zone the rule's wall time is in."),
    topic: list[str] = typer.Option([], help="Only subscribers who chose this topic; repeat."),
    name: str | None = typer.Option(None, help="Defaults to the rule in words."),
) -> None:
    """Send the newest unsent ready issue at every occurrence of a rule."""
    app_ctx = app_context(ctx)
    tz_name = _tz_name(app_ctx, tz)
    campaigns.check_topics(topic, [t.name for t in app_ctx.settings.topics])
    with app_ctx.db.session() as session:
        schedule = admin.add_recurring(
            session, rule_text=rule, tz_name=tz_name, now=system_now(), topics=topic, name=name
        )
        assert schedule.next_run_at is not None
        line = f"recurring schedule #{schedule.id} {schedule.name!r}: first run " + describe(
            schedule.next_run_at, zone(tz_name)
        )
    console.print(line, highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Scheduled (and missed) campaigns, and recurring rules with their next run."""
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        listing = admin.listing(session, tz_name=app_ctx.settings.timezone)
    if as_json:
        data = {"campaigns": listing.campaigns, "recurring": listing.recurring}
        console.print_json(json.dumps(data))
        return
    keys = ("id", "issue", "status", "due", "local_time", "topics", "reason")
    table = Table(*(k.replace("_", " ") for k in keys), title="campaigns")
    for c in listing.campaigns:
        table.add_row(*_cells(c, *keys))
    console.print(table)
    rules = Table("id", "name", "enabled", "next run", "last result", title="recurring")
    for r in listing.recurring:
        rules.add_row(*_cells(r, "id", "name", "enabled", "next_run", "last_result"))
    console.print(rules)


def _cells(row: dict[str, Any], *keys: str) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(value)
        return "" if value is None else str(value)

    return [cell(row[k]) for k in keys]


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    item_id: int = typer.Argument(..., metavar="ID", help="Campaign id (or schedule id)."),
    recurring: bool = typer.Option(False, "--recurring", help="ID is a recurring schedule."),
) -> None:
    """Call off a scheduled campaign, or stop a recurring schedule with --recurring."""
    with app_context(ctx).db.session() as session:
        if recurring:
            schedule = admin.disable_recurring(session, item_id)
            console.print(f"recurring schedule #{item_id} {schedule.name!r} disabled")
            return
        admin.cancel_scheduled(session, item_id)
    console.print(f"campaign #{item_id} cancelled")


@app.command("reschedule")
def reschedule(
    ctx: typer.Context,
    campaign_id: int = typer.Argument(..., metavar="ID", help="Campaign id."),
    at: str = typer.Option(..., "--at", help="New local date and time."),
    tz: str | None = typer.Option(None, "--tz", help=TZ_HELP),
) -> None:
    """Move a campaign that has not started (scheduled, missed or failed to start)."""
    app_ctx = app_context(ctx)
    tz_name = _tz_name(app_ctx, tz)
    due = parse_at(at, tz_name)
    with app_ctx.db.session() as session:
        admin.reschedule(
            session, campaign_id, at=due, now=system_now(),
            grace_seconds=app_ctx.settings.misfire_grace_seconds,
        )  # fmt: skip
    when = describe(due, zone(tz_name))
    console.print(f"campaign #{campaign_id} now due {when}", highlight=False)


# --- the scheduler process -------------------------------------------------------------


def configure_logging() -> None:
    """Timestamped lines on stderr; APScheduler's and Alembic's chatter only when it matters."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("apscheduler", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set the event (stop APScheduler, finish the batch in hand, release the
    lock); the previous handlers come back afterwards, so the demo leaves its host as it was."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %s: shutting down gracefully", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_tick(runs: list[RunReport], due: DueReport) -> None:
    for run in runs:
        console.print(f"schedule #{run.schedule_id}: {run.result}", highlight=False)
    for label, ids in (("started", due.started), ("missed", due.missed), ("failed", due.failed)):
        if ids:
            console.print(f"{label}: " + ", ".join(f"#{i}" for i in ids))


@scheduler_app.command("run")
def run(
    ctx: typer.Context,
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="Also send here (else run 'newsletter worker')."
    ),
    sweep_seconds: float = typer.Option(30.0, min=0.1, help="Safety sweep interval."),
    retry_seconds: float = typer.Option(5.0, min=0.1, help="Leader-election retry interval."),
    once: bool = typer.Option(False, "--once", help="One pass (for cron or a test), then exit."),
) -> None:
    """Start scheduled campaigns when due (one leader per database; SIGTERM stops gracefully)."""
    app_ctx = app_context(ctx)
    configure_logging()
    if once:
        runs, due = steps.tick(app_ctx.db, app_ctx.settings, system_now())
        _print_tick(runs, due)
        _send_once(app_ctx, worker=worker)
        _sequences_once(app_ctx, worker=worker)
        return
    options = RunOptions(sweep_seconds=sweep_seconds, retry_seconds=retry_seconds, worker=worker)
    runtime = SchedulerRuntime(app_ctx.db, app_ctx.settings, options=options)
    console.print(
        f"scheduler for {redact(app_ctx.settings.database_url)}: sweep every {sweep_seconds:g}s, "
        f"{'with' if worker else 'without'} an in-process worker",
        highlight=False,
    )
    with _stop_on_signals() as stop:
        runtime.run(stop)


def _send_once(app_ctx: AppContext, *, worker: bool) -> None:
    """``--once`` from cron: send every campaign that is sending before returning.

    Starting only freezes the audience; without this a cron job's pass would leave
    the campaign queued until some worker came by.  With ``--no-worker`` say so.
    """
    from newsletter.cli.campaigns import _print_report, _send_with_progress, _stop_on_sigterm

    with app_ctx.db.session() as session:
        sending = campaigns.campaign_ids(session=session, status=CampaignStatus.SENDING)
    if not sending:
        return
    listed = ", ".join(f"#{i}" for i in sending)
    if not worker:
        console.print(
            f"not sending here (--no-worker): {listed} wait for 'newsletter worker' "
            "or a scheduler with a worker",
            highlight=False,
        )
        return
    stop = _stop_on_sigterm()
    for campaign_id in sending:
        if stop.is_set():
            break
        _send_with_progress(app_ctx, campaign_id, stop)
        _print_report(app_ctx, campaign_id, as_json=False, recipients=False)


def _sequences_once(app_ctx: AppContext, *, worker: bool) -> None:
    """``--once``: enrol and queue due sequence emails, and (with a worker) send them now."""
    from newsletter.automation import sequences
    from newsletter.cli.campaigns import _stop_on_sigterm
    from newsletter.sending import service

    report = sequences.tick(app_ctx.db, app_ctx.settings, system_now())
    if not report.total_queued:
        return
    console.print(f"sequences: {report.total_queued} email(s) queued", highlight=False)
    if worker:
        with service.open_worker(app_ctx.db, app_ctx.settings) as running:
            stats = running.run(_stop_on_sigterm(), until=lambda: True)  # until nothing is due
        console.print(f"sequences: {stats.accepted} sent", highlight=False)


# --- newsletter demo ---------------------------------------------------------------------

DEMO_LEAD_SECONDS = 3.0
DEMO_TIMEOUT_SECONDS = 120.0


def demo_step(app_ctx: AppContext) -> None:
    """``newsletter demo``: schedule Issue 42 a few seconds ahead and let the scheduler send it."""
    from newsletter.cli.campaigns import _print_report

    db, settings = app_ctx.db, app_ctx.settings
    now = system_now()
    due = now + timedelta(seconds=DEMO_LEAD_SECONDS)
    with db.session() as session:
        issue = campaigns.get_issue_by_number(42, session=session)
        earlier = campaigns.earlier_send(issue.id, [], session=session)
        if earlier is not None:  # the demo run again: say that it resends, on purpose
            console.print(
                f"Issue 42 already went out in {campaigns.describe_earlier(earlier)}; "
                "the demo sends it again (as 'schedule --resend' would)",
                highlight=False,
            )
        campaign_id = admin.schedule_issue(
            session, 42, at=due, now=now, name="Issue 42 (demo)",
            grace_seconds=settings.misfire_grace_seconds, resend=True,
        ).id  # fmt: skip
    when = describe(due, zone(settings.timezone))
    console.print(f"campaign #{campaign_id} scheduled for {when} (in {DEMO_LEAD_SECONDS:g} s); "
                  "running the scheduler until it is sent", highlight=False)  # fmt: skip
    runtime = SchedulerRuntime(
        db, settings, options=RunOptions(sweep_seconds=1.0, retry_seconds=0.5),
        on_tick=lambda runs, report: _print_tick([], report),
    )  # fmt: skip
    with _stop_on_signals() as stop:
        thread = threading.Thread(target=runtime.run, args=(stop,), name="scheduler", daemon=True)
        thread.start()
        try:
            _follow(db, campaign_id, stop)
        finally:
            stop.set()
            thread.join()
    _print_report(app_ctx, campaign_id, as_json=False, recipients=False)
    if settings.transport == "outbox":
        files = sorted(settings.outbox_path.glob("*.eml"))
        console.print(f"outbox: {len(files)} messages in {settings.outbox_path}/")


def _follow(db: Database, campaign_id: int, stop: threading.Event) -> None:
    """A progress bar from 'scheduled' through 'sending' to done, read from the ledger."""
    from newsletter.cli.campaigns import _done_count

    progress = progress_bar()
    deadline = system_now() + timedelta(seconds=DEMO_TIMEOUT_SECONDS)
    with progress:
        task = progress.add_task("waiting for the scheduler", total=None)
        while not stop.wait(0.2):
            with db.session() as session:
                status = campaigns.get_campaign(campaign_id, session=session).status
            if status == CampaignStatus.SCHEDULED:
                if system_now() > deadline:
                    console.print("the scheduler did not start the campaign in time; giving up")
                    return
                continue
            done, total = _done_count(db, campaign_id)
            progress.update(task, description="sending", completed=done, total=total)
            if status != CampaignStatus.SENDING:
                return
