"""``newsletter sequences``: welcome and drip sequences (the logic: ``automation.sequences``)."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from newsletter.automation import sequences
from newsletter.cli.common import app_context, console
from newsletter.sending.engine import system_now

app = typer.Typer(
    help="Welcome and drip sequences: emails sent after a confirmation, a topic or a date.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the sequence, e.g. 'Welcome'."),
    trigger: str = typer.Option(
        "confirmed",
        "--trigger",
        help="confirmed, topic:<name> or date:<signed_up|confirmed>.",
    ),
) -> None:
    """Create an active sequence; only triggers from now on enrol subscribers."""
    app_ctx = app_context(ctx)
    topics = [t.name for t in app_ctx.settings.topics]
    with app_ctx.db.session() as session:
        row = sequences.create_sequence(session, name, trigger, topics=topics, now=system_now())
        line = f"sequence #{row.id} {row.name!r} created (when a subscriber "
        line += sequences.describe_trigger(row) + "); add emails with 'sequences add-step'"
    console.print(line, highlight=False)


@app.command("add-step")
def add_step(
    ctx: typer.Context,
    sequence: str = typer.Argument(..., help="Sequence id or name."),
    issue: int = typer.Option(..., "--issue", help="Number of the (ready) issue to send."),
    delay: str = typer.Option(
        "0", "--delay", help="After the previous step (the first: the trigger): 0, 30m, 2h, 3d."
    ),
) -> None:
    """Append an email to a sequence."""
    minutes = sequences.parse_delay(delay)
    with app_context(ctx).db.session() as session:
        row = sequences.get_sequence(session, sequence)
        step = sequences.add_step(session, row.id, issue, delay_minutes=minutes, now=system_now())
        line = (
            f"step {step.position} of {row.name!r}: issue {issue}, "
            f"{sequences.describe_delay(minutes)} after the "
            + ("trigger" if step.position == 1 else "previous step")
        )
    console.print(line, highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every sequence: trigger, state, steps, enrolled and sent."""
    with app_context(ctx).db.session() as session:
        rows = sequences.sequence_rows(session)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    keys = ("id", "name", "status", "trigger", "steps", "enrolled", "sent")
    table = Table(*keys)
    for r in rows:
        table.add_row(*(str(r[k]) for k in keys))
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    sequence: str = typer.Argument(..., help="Sequence id or name."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Each step's results: sent, skipped, failed, opened, clicked."""
    with app_context(ctx).db.session() as session:
        report = sequences.sequence_report(session, sequences.get_sequence(session, sequence).id)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    enrolled = ", ".join(f"{n} {state}" for state, n in report["enrolments"].items())
    console.print(
        f"sequence #{report['id']} {report['name']!r} ({report['status']}): when a subscriber "
        f"{report['trigger']}; enrolled: {enrolled}",
        highlight=False,
    )
    table = Table("step", "issue", "after trigger", "queued", "sent", "skipped", "failed",
                  "opened", "clicked")  # fmt: skip
    for s in report["steps"]:
        table.add_row(
            str(s["position"]), f"{s['issue']}: {s['title']}", s["after_trigger"],
            *(str(s[k]) for k in ("queued", "sent", "skipped", "failed", "opened", "clicked")),
        )  # fmt: skip
    console.print(table)


@app.command("pause")
def pause(ctx: typer.Context, sequence: str = typer.Argument(..., help="Id or name.")) -> None:
    """Stop enrolling and sending; queued emails wait."""
    with app_context(ctx).db.session() as session:
        row = sequences.set_paused(session, sequences.get_sequence(session, sequence).id, True)
        name = row.name
    console.print(f"sequence {name!r} paused", highlight=False)


@app.command("resume")
def resume(ctx: typer.Context, sequence: str = typer.Argument(..., help="Id or name.")) -> None:
    """Enrol and send again (who triggered meanwhile is enrolled at the next tick)."""
    with app_context(ctx).db.session() as session:
        row = sequences.set_paused(session, sequences.get_sequence(session, sequence).id, False)
        name = row.name
    console.print(f"sequence {name!r} resumed", highlight=False)


@app.command("tick")
def tick(ctx: typer.Context) -> None:
    """Enrol and queue what is due now (the scheduler does this every sweep)."""
    app_ctx = app_context(ctx)
    report = sequences.tick(app_ctx.db, app_ctx.settings, system_now())
    console.print(
        f"{report.enrolled} enrolled, {report.stopped} stopped, "
        f"{report.total_queued} email(s) queued",
        highlight=False,
    )
