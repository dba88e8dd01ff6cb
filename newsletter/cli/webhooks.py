"""``newsletter webhooks``: endpoints that receive signed events, and their delivery log."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from newsletter.automation.webhooks import outbox, registry
from newsletter.automation.webhooks.dispatcher import Dispatcher
from newsletter.automation.webhooks.events import EVENTS
from newsletter.cli.common import app_context, console
from newsletter.models.base import utcnow

app = typer.Typer(help="Outgoing webhooks: endpoints, deliveries, replays.", no_args_is_help=True)
_EVENTS = ", ".join(EVENTS)


@app.command("add")
def add(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The https:// URL that receives the events."),
    event: list[str] = typer.Option([], "--event", help=f"Repeat; default all: {_EVENTS}."),
    description: str = typer.Option("", "--description", help="A note for the admins."),
) -> None:
    """Register an endpoint and print its signing secret once."""
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        row, secret = registry.create_endpoint(
            session, url, event, allow_private=app_ctx.settings.webhook_allow_private_addresses,
            actor="cli", now=utcnow(), description=description,
        )  # fmt: skip
        ident, events = row.id, ", ".join(row.events)
    console.print(f"endpoint #{ident} for {events}; its signing secret:", highlight=False)
    sys.stdout.write(secret + "\n")
    console.print("Keep it: it is not shown again (README: Verifying a delivery).", style="dim")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every endpoint with its events and state (active, failing, disabled and why)."""
    with app_context(ctx).db.session() as session:
        rows = [registry.endpoint_as_dict(r) for r in registry.list_endpoints(session)]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("id", "url", "events", "state", "last error")
    for r in rows:
        state = r["state"] + (f" ({r['disabled_reason']})" if r["disabled_reason"] else "")
        table.add_row(str(r["id"]), r["url"], " ".join(r["events"]), state, r["last_error"] or "")
    console.print(table)


@app.command("remove")
def remove(ctx: typer.Context, endpoint_id: int = typer.Argument(...)) -> None:
    """Delete an endpoint and its delivery log."""
    with app_context(ctx).db.session() as session:
        registry.remove_endpoint(session, endpoint_id)
    console.print(f"endpoint #{endpoint_id} removed")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    endpoint_id: int | None = typer.Option(None, "--endpoint", help="Only this endpoint's."),
    status: str | None = typer.Option(None, "--status", help="pending, delivered, failed..."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The delivery log, newest first, with each last response code."""
    with app_context(ctx).db.session() as session:
        rows = registry.deliveries(session, endpoint_id=endpoint_id, status=status, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in rows], indent=2) + "\n")
        return
    table = Table("id", "endpoint", "event", "status", "tries", "code", "answer / error")
    for r in rows:
        code = str(r.last_status) if r.last_status is not None else "-"
        table.add_row(
            str(r.id), str(r.endpoint_id), r.event, r.status, str(r.attempts), code,
            (r.last_error or r.excerpt or "")[:80],
        )  # fmt: skip
    console.print(table)


@app.command("replay")
def replay(ctx: typer.Context, delivery_id: int = typer.Argument(...)) -> None:
    """Queue a finished delivery's event again (same body and event id, fresh retries)."""
    with app_context(ctx).db.session() as session:
        fresh = registry.replay(session, delivery_id, now=utcnow())
    console.print(f"delivery #{delivery_id} queued again as #{fresh}")


@app.command("test")
def test(ctx: typer.Context, endpoint_id: int = typer.Argument(...)) -> None:
    """Send a webhook.test event to one endpoint now and print the answer (exit 1 if not 2xx)."""
    app_ctx = app_context(ctx)
    now = utcnow()
    with app_ctx.db.session() as session:
        endpoint = registry.get_endpoint(session, endpoint_id)
        delivery_id = outbox.send_test(session, endpoint, actor="cli", now=now)
    dispatcher = Dispatcher(app_ctx.db, app_ctx.settings)
    try:
        outcome = dispatcher.deliver_now(delivery_id)
    finally:
        dispatcher.close()
    console.print(f"delivery #{delivery_id}: {outcome.summary}", highlight=False, soft_wrap=True)
    if not outcome.ok:
        raise typer.Exit(1)
