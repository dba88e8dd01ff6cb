"""``newsletter tracking``: the click and open spool, the retention purge, what is kept."""

from __future__ import annotations

from datetime import timedelta

import typer
from sqlalchemy import func, select

from newsletter.cli.common import app_context, console
from newsletter.models.base import utcnow
from newsletter.models.tracking import EngagementEvent
from newsletter.tracking.engagement import purge
from newsletter.tracking.recorder import Recorder

app = typer.Typer(help="First-party click and open tracking.", no_args_is_help=True)


@app.command("drain")
def drain(ctx: typer.Context) -> None:
    """Store every spooled click and open now (the web app does it every second)."""
    app_ctx = app_context(ctx)
    recorder = Recorder.build(app_ctx.settings, app_ctx.db)
    try:
        report = recorder.drain_once()
    finally:
        recorder.spool.close()
    console.print(
        f"{report.records} hits stored from {report.files} spool files"
        + (f"; {report.unreadable} unreadable lines skipped" if report.unreadable else "")
    )


@app.command("purge")
def purge_old(ctx: typer.Context) -> None:
    """Delete raw events older than tracking_retention_days (the scheduler does it every 6 h)."""
    app_ctx = app_context(ctx)
    days = app_ctx.settings.tracking_retention_days
    with app_ctx.db.session() as session:
        deleted = purge(session=session, before=utcnow() - timedelta(days=days))
    console.print(f"{deleted} click and open events older than {days} days deleted")


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Whether tracking is on, how long events are kept, and what is stored and spooled."""
    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    with app_ctx.db.session() as session:
        stored, oldest = session.execute(
            select(func.count(EngagementEvent.id), func.min(EngagementEvent.occurred_at))
        ).one()
    spooled = sum(1 for _ in (settings.tracking_dir / "spool").glob("*.jsonl"))
    state = "on" if settings.tracking else "off (links go straight to their page, no pixel)"
    console.print(f"tracking: {state}; opens: {'on' if settings.track_opens else 'off'}")
    console.print(
        f"raw events kept {settings.tracking_retention_days} days: {stored} stored"
        + (f", oldest {oldest:%Y-%m-%d}" if oldest else "")
        + f"; {spooled} spool files waiting in {settings.tracking_dir / 'spool'}",
        highlight=False,
    )
