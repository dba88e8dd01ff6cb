"""``newsletter campaign``, ``newsletter worker`` and ``newsletter send-test``."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from newsletter.cli.common import AppContext, app_context, console, err_console
from newsletter.db import Database
from newsletter.errors import StateError, ValidationError
from newsletter.insights.results import IssueResults, issue_results
from newsletter.models.sending import DeliveryStatus
from newsletter.sending import abtest, campaigns, service
from newsletter.sending.engine import system_now
from newsletter.sending.sqlstore import count_by_status

app = typer.Typer(
    help="Send issues to subscribers and follow every recipient.", no_args_is_help=True
)


@app.command("create")
def create(
    ctx: typer.Context,
    issue: int = typer.Argument(..., help="Issue number."),
    topic: list[str] = typer.Option([], help="Only subscribers who chose this topic; repeat."),
    name: str | None = typer.Option(None, help="Defaults to the issue title."),
    resend: bool = typer.Option(
        False, "--resend", help="Send even if this issue already went to this audience."
    ),
    audience: str = typer.Option(
        "active", help="active (the default: not the inactive), inactive (re-engagement) or all."
    ),
    subject_variant: list[str] = typer.Option(
        [],
        "--subject-variant",
        help="A/B test: a subject line to try; give 2 or 3 (the issue's own subject is not "
        "added by itself).",
    ),
    test_share: int = typer.Option(
        abtest.DEFAULT_SHARE,
        "--test-share",
        help="A/B test: percent of the audience that gets each subject in the sample.",
    ),
    test_window: str = typer.Option(
        "4h", "--test-window", help="A/B test: how long to wait before picking (90m, 4h, 1d)."
    ),
    test_metric: str = typer.Option(
        "clicks", "--test-metric", help="A/B test: pick by unique human clicks or opens."
    ),
) -> None:
    """Create a draft campaign for an issue (refused if it already went to this audience).

    With --subject-variant (2 or 3 times) it is a subject test: each subject goes to
    --test-share % of the audience, and after --test-window the one with the most
    unique human clicks (or opens) goes to everyone else.
    """
    app_ctx = app_context(ctx)
    known = [t.name for t in app_ctx.settings.topics]
    campaigns.check_topics(topic, known)
    plan = None
    if subject_variant:
        plan = abtest.make_plan(
            subject_variant, share_percent=test_share, window=test_window, metric=test_metric
        )
    with app_ctx.db.session() as session:
        campaign = campaigns.create_campaign(
            issue, session=session, topics=topic, name=name, resend=resend, audience=audience,
            subject_test=plan,
        )  # fmt: skip
        console.print(f"campaign #{campaign.id} created for issue {issue} ({campaign.status})")
        if plan is not None:
            console.print(
                f"subject test: {len(plan.subjects)} subjects, {plan.share_percent} % of the "
                f"audience each, winner by unique human {plan.metric} after "
                f"{abtest.describe_window(int(plan.window.total_seconds()))}"
            )


@app.command("pick-winner")
def pick_winner(
    ctx: typer.Context,
    campaign_id: int,
    now: bool = typer.Option(
        False, "--now", help="Pick before the test window has passed (the scheduler waits)."
    ),
) -> None:
    """Pick a subject test's winner and release the rest of the audience (idempotent).

    The scheduler does this by itself when the window has passed; this is for
    running it by hand (or early, with --now).
    """
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        test = abtest.get_test(campaign_id, session=session)
        if test is None:
            raise ValidationError(f"campaign #{campaign_id} has no subject test")
        decision = abtest.decide(campaign_id, session=session, now=system_now(), force=now)
        winner, at = test.winner, test.decide_at
    if decision is not None:
        console.print(f"campaign #{campaign_id}: {decision.note}", highlight=False)
        console.print(f"{decision.released} held batch(es) released with {decision.subject!r}")
    elif winner is not None:
        console.print(f"campaign #{campaign_id}: the winner was already picked (variant {winner})")
    elif at is None:
        raise StateError(f"campaign #{campaign_id} has not started; its test has no sample yet")
    else:
        console.print(f"campaign #{campaign_id}: the window ends {at:%Y-%m-%d %H:%M} UTC "
                      "(pass --now to pick before)")  # fmt: skip


def _done_count(db: Database, campaign_id: int) -> tuple[int, int]:
    with db.session() as session:
        counts = count_by_status(session, campaign_id)
        total = campaigns.get_campaign(campaign_id, session=session).total_recipients
    return total - counts.get(DeliveryStatus.QUEUED, 0), total


def _progress_hook(
    db: Database, campaign_id: int, progress: Progress, task: TaskID
) -> Callable[[], bool]:
    finished = service.campaign_finished(db, campaign_id)

    def until() -> bool:
        """Sent, stopped, or (a subject test) only the rest left, held for the winner."""
        done, total = _done_count(db, campaign_id)
        progress.update(task, completed=done, total=total)
        if finished():
            return True
        with db.session() as session:
            return abtest.waiting_for_winner(campaign_id, session=session)

    return until


def _send_with_progress(app_ctx: AppContext, campaign_id: int, stop: threading.Event) -> None:
    db, settings = app_ctx.db, app_ctx.settings
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress, service.open_worker(db, settings) as worker:
        task = progress.add_task("send", total=_done_count(db, campaign_id)[1])
        until = _progress_hook(db, campaign_id, progress, task)

        def step_and_report(stage: str, _batch: object) -> None:
            if stage == "claimed":
                until()

        worker.hook = step_and_report
        worker.run(stop, until=until)


@app.command("start")
def start(
    ctx: typer.Context,
    campaign_id: int,
    wait: bool = typer.Option(False, "--wait", help="Send here and now with a progress bar."),
    resend: bool = typer.Option(
        False, "--resend", help="Send even if this issue already went to this audience."
    ),
) -> None:
    """Preflight, freeze the audience, and start sending (idempotent)."""
    app_ctx = app_context(ctx)
    if resend:
        with app_ctx.db.session() as session:
            campaigns.allow_resend(campaign_id, session=session)
    started = service.start(app_ctx.db, app_ctx.settings, campaign_id)
    console.print(f"campaign #{campaign_id} {'started' if started else 'was already started'}")
    if wait:
        _send_with_progress(app_ctx, campaign_id, _stop_on_sigterm())
        _print_report(app_ctx, campaign_id, as_json=False, recipients=False)
        with app_ctx.db.session() as session:
            held = abtest.waiting_for_winner(campaign_id, session=session)
        if held:
            console.print(
                "the test sample is sent; the rest goes out when the winner is picked "
                f"(the scheduler, or 'newsletter campaign pick-winner {campaign_id}')"
            )


@app.command("pause")
def pause(ctx: typer.Context, campaign_id: int) -> None:
    """Stop claiming new batches (batches in flight still settle)."""
    with app_context(ctx).db.session() as session:
        campaigns.pause_campaign(campaign_id, session=session)
    console.print(f"campaign #{campaign_id} paused")


@app.command("resume")
def resume(ctx: typer.Context, campaign_id: int) -> None:
    """Continue a paused campaign."""
    with app_context(ctx).db.session() as session:
        campaigns.resume_campaign(campaign_id, session=session)
    console.print(f"campaign #{campaign_id} sending")


@app.command("cancel")
def cancel(ctx: typer.Context, campaign_id: int) -> None:
    """Stop for good; recipients not yet sent end as skipped."""
    with app_context(ctx).db.session() as session:
        campaigns.cancel_campaign(campaign_id, session=session, now=system_now())
    console.print(f"campaign #{campaign_id} cancelled")


@app.command("retry-failed")
def retry_failed(
    ctx: typer.Context,
    campaign_id: int,
    include_unknown: bool = typer.Option(
        False, "--include-unknown", help="Also resend 'maybe sent' recipients (may duplicate)."
    ),
) -> None:
    """Queue failed recipients again."""
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        count = campaigns.retry_failed(
            campaign_id,
            session=session,
            include_unknown=include_unknown,
            batch_size=app_ctx.settings.batch_size,
            now=system_now(),
        )
    console.print(f"{count} recipient(s) queued again for campaign #{campaign_id}")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """All campaigns with their state."""
    from sqlalchemy import select

    from newsletter.models import Campaign

    with app_context(ctx).db.session() as session:
        query = select(Campaign).where(Campaign.sequence_id.is_(None))  # steps: 'sequences show'
        rows = list(session.scalars(query.order_by(Campaign.id)))
        data = [
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "recipients": c.total_recipients,
                "scheduled_at": c.scheduled_at.isoformat() if c.scheduled_at else None,
                "reason": c.status_reason,
            }
            for c in rows
        ]
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table("id", "name", "status", "recipients", "scheduled", "reason")
    for row in data:
        table.add_row(
            *(
                str(row[k] or "")
                for k in ("id", "name", "status", "recipients", "scheduled_at", "reason")
            )
        )
    console.print(table)


def _rate(name: str, value: float | None) -> str:
    label = name.replace("_", " ")
    return f"{label} {campaigns.NOT_REPORTED}" if value is None else f"{label} {value:.1%}"


def _print_report(
    app_ctx: AppContext, campaign_id: int, *, as_json: bool, recipients: bool,
    links: bool = False, csv_path: Path | None = None,
) -> None:  # fmt: skip
    with app_ctx.db.session() as session:
        report = campaigns.campaign_report(campaign_id, session=session, with_recipients=recipients)
        found = issue_results(session, campaign_id=campaign_id) if links or as_json else None
    if csv_path is not None and found is not None:
        _write_csv(found, csv_path)
    if as_json:
        console.print_json(json.dumps({**report.as_dict(), "results": found and found.as_dict()}))
        return
    console.print(
        f"campaign #{report.id} {report.name!r}: {report.status}"
        + (f" ({report.status_reason})" if report.status_reason else ""),
        highlight=False,
    )
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items() if v)
    console.print(f"recipients {report.total}: {counts or 'none'}; complained {report.complained}")
    console.print(", ".join(_rate(k, v) for k, v in report.rates.items()))
    e = report.engagement
    if any(e.values()):
        console.print(
            f"readers: {e['opened']} opened ({e['opens']} opens), {e['clicked']} clicked "
            f"({e['clicks']} clicks); machines, not counted as readers: "
            f"{e['machine_opens']} opens, {e['machine_clicks']} clicks",
            highlight=False,
        )
    if report.subject_test:
        _print_subject_test(report.subject_test)
    if report.relays:
        carried = ", ".join(
            f"{r['relay']} {r['batches']} batches ({r['recipients']} recipients)"
            for r in report.relays
        )
        console.print(f"relays: {carried}", highlight=False)
    if report.unknown:
        console.print(
            f"[yellow]{len(report.unknown)} maybe sent (unknown):[/] reconcile from "
            "webhooks or 'retry-failed --include-unknown'"
        )
        for row in report.unknown[:20]:
            console.print(f"  #{row['ledger_id']} {row['email']}: {row['detail']}", highlight=False)
    if found is not None:
        _print_links(found)
    if recipients and report.batches:
        batches = Table("batch", "status", "size", "attempts", "relay", "error")
        for b in report.batches:
            batches.add_row(str(b["seq"]), b["status"], str(b["size"]), str(b["attempts"]),
                            b["relay"] or "", b["error"] or "")  # fmt: skip
        console.print(batches)
    if recipients:
        table = Table("ledger id", "email", "status", "attempts", "detail")
        for row in report.recipients:
            table.add_row(
                str(row["ledger_id"]),
                row["email"],
                row["status"],
                str(row["attempts"]),
                row["detail"] or "",
            )
        console.print(table)


def _print_subject_test(test: dict[str, object]) -> None:
    """Each subject, its sample, its result, and how sure the result is."""
    variants = test["variants"]
    assert isinstance(variants, list)
    table = Table("", "subject", "sample", "reached", "opened", "clicked", "rate", "")
    for v in variants:
        table.add_row(v["label"], v["subject"], str(v["sample"]), str(v["reached"]),
                      str(v["opened"]), str(v["clicked"]), f"{v['rate']:.1%}",
                      "winner" if v["winner"] else "")  # fmt: skip
    console.print(
        f"subject test: {test['share_percent']} % each, by unique human {test['metric']}, "
        f"window {test['window']}",
        highlight=False,
    )
    console.print(table)
    if test["decision"]:
        console.print(f"decided {test['decided_at']}: {test['decision']}", highlight=False)
    elif test["decide_at"]:
        console.print(f"winner picked at {test['decide_at']}; so far: {test['confidence']}",
                      highlight=False)  # fmt: skip
    rest = test["rest"]
    assert isinstance(rest, dict)
    console.print(f"rest of the audience: {rest['recipients']} recipients, "
                  f"{rest['reached']} reached", highlight=False)  # fmt: skip


def _print_links(found: IssueResults) -> None:
    """Each link of the issue: unique readers, clicks, click-through rate, machines apart."""
    table = Table("#", "link", "section", "readers", "clicks", "CTR", "machine clicks",
                  title=f"Issue {found.issue_number}: {found.delivered} reached")  # fmt: skip
    for row in found.links:
        table.add_row(str(row.position), row.label[:60], row.section or "", str(row.clickers),
                      str(row.clicks), f"{row.ctr:.1%}", str(row.machine_clicks))  # fmt: skip
    console.print(table)


def _write_csv(found: IssueResults, path: Path) -> None:
    text = found.to_csv()
    if str(path) == "-":
        console.out(text, end="", highlight=False)
        return
    path.write_text(text, encoding="utf-8")
    err_console.print(f"wrote {path}", highlight=False)


@app.command("status")
def status(ctx: typer.Context, campaign_id: int) -> None:
    """Counts by state and rates."""
    _print_report(app_context(ctx), campaign_id, as_json=False, recipients=False)


@app.command("report")
def report(
    ctx: typer.Context,
    campaign_id: int,
    as_json: bool = typer.Option(False, "--json"),
    recipients: bool = typer.Option(True, "--recipients/--no-recipients"),
    links: bool = typer.Option(
        True, "--links/--no-links", help="Each link's readers, clicks and click-through rate."
    ),
    csv_path: Path | None = typer.Option(
        None,
        "--csv",
        help="Also write every link's and resource's results, overall and per "
        "topic, as CSV to this file ('-': standard output).",
        dir_okay=False,
    ),
) -> None:
    """Counts, rates, each link's results, what is still unknown, and every recipient's row.

    --json adds "results": per link and per resource, unique human clickers, clicks,
    click-through rate over recipients reached, machine clicks, and the same per topic.
    """
    _print_report(app_context(ctx), campaign_id, as_json=as_json, recipients=recipients,
                  links=links or csv_path is not None, csv_path=csv_path)  # fmt: skip


@app.command("clickmap")
def clickmap_(ctx: typer.Context, campaign_id: int) -> None:
    """Draw the issue's click map: Chromium lays the email out at 600 px, each link's box
    and share of readers' clicks (shown on the admin campaign page)."""
    from newsletter.insights import clickmap
    from newsletter.models import Issue

    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        issue_id = campaigns.get_campaign(campaign_id, session=session).issue_id
        issue = session.get(Issue, issue_id)
        assert issue is not None
        found = clickmap.capture(app_ctx.settings, issue, session=session)
        results = issue_results(session, campaign_id=campaign_id)
    by_position = {row.position: row for row in results.links}
    path = clickmap.image_path(app_ctx.settings, issue_id)
    size = f"{found.width}x{found.height}, {len(found.boxes)} links"
    console.print(f"wrote {path} ({size})", highlight=False)
    for box in found.boxes:
        row = by_position.get(box.position)
        share = results.share(row) if row else 0.0
        console.print(f"  #{box.position} at ({box.x:.0f}, {box.y:.0f}) {box.width:.0f}x"
                      f"{box.height:.0f}: {share:.1%} of clicks", highlight=False)  # fmt: skip


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM/SIGINT: stop claiming, finish the batch in hand, exit."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        console.print(f"signal {signum}: finishing the batch in hand, then stopping")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def worker(
    ctx: typer.Context,
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Exit when nothing is left to send."
    ),
) -> None:
    """Claim and send batches until stopped (SIGTERM finishes the batch in hand)."""
    app_ctx = app_context(ctx)
    stop = _stop_on_sigterm()
    with service.open_worker(app_ctx.db, app_ctx.settings) as w:
        console.print(f"worker sending through {w.messenger.name}")
        idle: Callable[[], bool] | None = (lambda: True) if until_idle else None
        stats = w.run(stop, until=idle)
    console.print(
        f"{stats.batches} batches: {stats.accepted} accepted, {stats.failed} failed, "
        f"{stats.requeued} to retry, {stats.unknown} unknown, {stats.skipped} skipped"
    )


def send_test(
    ctx: typer.Context,
    issue: int = typer.Argument(..., help="Issue number."),
    to: str = typer.Option(..., "--to", help="Address to send the test to."),
) -> None:
    """Send the whole issue to one address, marked [TEST], outside any campaign."""
    app_ctx = app_context(ctx)
    result = service.send_test(app_ctx.db, app_ctx.settings, issue, to)
    outcome = result.results[0]
    console.print(f"test of issue {issue} to {to}: {outcome.outcome} ({outcome.detail})")
    if outcome.outcome != "accepted":
        raise typer.Exit(1)
