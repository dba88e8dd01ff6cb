"""``newsletter bounces``: receive, poll and import bounces and complaints (newsletter/bounces)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import typer
from rich.table import Table

from newsletter.bounces.apply import BounceProcessor, counts_by_kind
from newsletter.bounces.parse import parse
from newsletter.bounces.verp import Verp
from newsletter.cli.common import app_context, console, err_console, progress_bar
from newsletter.errors import ConfigError, NotFoundError
from newsletter.models.bounces import InboundKind, InboundMail

app = typer.Typer(
    help="Bounces and complaints without a provider: receive, poll, import.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Address to listen on [bounce_smtp_host]."),
    port: int | None = typer.Option(None, help="Port [bounce_smtp_port, 25]."),
) -> None:
    """Run the inbound SMTP server for the bounce domain's MX until SIGTERM or Ctrl-C."""
    from newsletter.bounces.receiver import BounceServer

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    host = host or settings.bounce_smtp_host
    port = settings.bounce_smtp_port if port is None else port
    server = BounceServer(BounceProcessor(app_ctx.db, settings), host=host, port=port)
    try:
        server.start()
    except OSError as exc:
        hint = (
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; see README)"
            if port < 1024
            else ""
        )
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    domain = settings.bounce_domain_name
    console.print(f"receiving bounces for @{domain} on {host}:{server.port}", highlight=False)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        stop.wait()
    finally:
        server.stop()


@app.command("poll")
def poll(ctx: typer.Context) -> None:
    """Read the bounce mailbox (IMAP or POP3) once; each message is removed only once stored."""
    from newsletter.bounces.mailbox import poll_mailbox

    app_ctx = app_context(ctx)
    report = poll_mailbox(BounceProcessor(app_ctx.db, app_ctx.settings), app_ctx.settings)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items())) or "nothing new"
    console.print(
        f"{report.seen} message(s): {kinds}; {report.duplicates} already stored;"
        f" {report.oversized} too large (left in the mailbox)",
        highlight=False,
    )


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help=".eml files, mbox files or Maildir folders."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and report; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per mail, one per line."),
) -> None:
    """Import bounces and complaints from files (a mailbox export)."""
    from newsletter.bounces.files import sources

    found = sources(paths)
    app_ctx = app_context(ctx)
    verp = Verp.from_settings(app_ctx.settings)
    processor = None if dry_run else BounceProcessor(app_ctx.db, app_ctx.settings)
    counts = {kind.value: 0 for kind in InboundKind}
    duplicates = 0
    with progress_bar(err_console if as_json else None) as bar:
        task = bar.add_task("reading", total=sum(s.count() for s in found))
        for source in found:
            for label, raw in source.messages():
                if processor is None:
                    parsed = parse(raw, verp=verp)
                else:
                    outcome = processor.process(raw, source="file")
                    parsed, duplicates = outcome.parsed, duplicates + int(outcome.duplicate)
                counts[parsed.kind.value] += 1
                if as_json:
                    sys.stdout.write(json.dumps(parsed.as_json(label)) + "\n")
                bar.advance(task)
    if not as_json:
        summary = ", ".join(f"{k} {n}" for k, n in counts.items())
        done = "dry run: nothing changed" if dry_run else f"{duplicates} already stored"
        console.print(f"{sum(counts.values())} mail(s): {summary} ({done})", highlight=False)


@app.command("stats")
def stats(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """How many bounces, complaints, auto-replies and unparsed mails were stored."""
    with app_context(ctx).db.session() as session:
        counts = counts_by_kind(session)
    if as_json:
        sys.stdout.write(json.dumps(counts) + "\n")
        return
    table = Table("kind", "mails")
    for kind, count in counts.items():
        table.add_row(kind, str(count))
    console.print(table)


@app.command("list")
def list_(
    ctx: typer.Context,
    kind: str | None = typer.Option(None, help="Only this kind (e.g. unparsed)."),
    limit: int = typer.Option(50, min=1, max=10_000),
) -> None:
    """The latest stored mails, with why nothing was applied where that is so."""
    from sqlalchemy import select

    query = select(InboundMail).order_by(InboundMail.id.desc()).limit(limit)
    if kind:
        query = query.where(InboundMail.kind == kind)
    table = Table("id", "received", "source", "kind", "status", "ledger", "note")
    with app_context(ctx).db.session() as session:
        for row in session.scalars(query):
            table.add_row(
                str(row.id), row.received_at.isoformat(timespec="seconds"), row.source, row.kind,
                row.status or "", str(row.delivery_id or ""), row.note or row.diagnostic or "",
            )  # fmt: skip
    console.print(table)


@app.command("raw")
def raw(ctx: typer.Context, mail_id: int) -> None:
    """Write a kept mail's raw bytes to stdout (``> bounce.eml``; re-ingest it after a fix)."""
    with app_context(ctx).db.session() as session:
        row = session.get(InboundMail, mail_id)
        if row is None:
            raise NotFoundError(f"no stored mail #{mail_id}")
        if row.raw is None:
            raise NotFoundError(f"mail #{mail_id} was applied; its raw bytes were not kept")
        sys.stdout.buffer.write(row.raw)
