"""``newsletter sources``: feeds, listing pages and sitemaps that fill the library's inbox."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from newsletter.cli.common import AppContext, app_context, console, err_console, progress_bar
from newsletter.config import classify_topics
from newsletter.errors import NewsletterError
from newsletter.models.base import utcnow
from newsletter.models.sources import ItemState, SourceKind
from newsletter.sources import inbox, poll, registry

app = typer.Typer(
    help="Sources (RSS/Atom feeds, listing pages, sitemaps) polled into the library's inbox.",
    no_args_is_help=True,
)

ITEM_IDS = typer.Argument(..., help="Inbox item ids (see: newsletter sources inbox).")


def _poll(app_ctx: AppContext, ids: list[int]) -> list[poll.PollResult]:
    """Poll with a progress bar, printing each source's result as it comes."""
    with progress_bar() as progress:
        task = progress.add_task("polling", total=len(ids))

        def show(result: poll.PollResult) -> None:
            progress.advance(task)
            line = f"#{result.source_id} {result.url}: {result.result}, {result.message}"
            (console if result.ok else err_console).print(line, highlight=False, markup=False)

        return poll.poll_many(ids, db=app_ctx.db, settings=app_ctx.settings, now=utcnow,
                              progress=show)  # fmt: skip


@app.command("add")
def add(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The feed, listing page or sitemap URL."),
    every: str = typer.Option("6h", "--every", help="How often to poll: 30m, 6h, 1d ..."),
    kind: SourceKind = typer.Option(SourceKind.AUTO, help="auto: decided by the first answer."),
    first_poll: bool = typer.Option(
        True, "--poll/--no-poll", help="Poll once now; a source that fails is not kept."
    ),
) -> None:
    """Register a source; its new items land in the library's inbox (admin: Library > Inbox)."""
    app_ctx = app_context(ctx)
    minutes = registry.parse_every(every)
    with app_ctx.db.session() as session:
        source = registry.add_source(url, session=session, every_minutes=minutes,
                                     now=utcnow(), kind=kind.value, actor="cli")  # fmt: skip
        source_id = source.id
    added = f"added source #{source_id} {url} (every {registry.describe_every(minutes)})"
    if not first_poll:
        console.print(added, highlight=False)
        return
    (result,) = poll.poll_many([source_id], db=app_ctx.db, settings=app_ctx.settings, now=utcnow)
    if not result.ok or result.empty:
        with app_ctx.db.session() as session:
            registry.remove_source(source_id, session=session)
        why = result.message if not result.ok else f"nothing found there: {result.message}"
        raise NewsletterError(f"source not added: {why} (--no-poll adds it anyway)")
    # Said only now: a source whose first poll fails is removed again, not added.
    console.print(added, highlight=False)
    console.print(f"first poll: {result.message}; see: newsletter sources inbox", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every source with its last poll's result and the items it has waiting in the inbox."""
    with app_context(ctx).db.session() as session:
        rows = registry.list_sources(session=session)
        waiting = registry.pending_counts(session=session)
        data: list[dict[str, Any]] = [
            {
                "id": s.id, "url": s.url, "kind": s.kind,
                "every": registry.describe_every(s.every_minutes),
                "last_polled_at": s.last_polled_at.isoformat() if s.last_polled_at else None,
                "last_result": s.last_result, "last_message": s.last_message,
                "next_poll_at": s.next_poll_at.isoformat() if s.next_poll_at else None,
                "waiting": waiting.get(s.id, 0),
            }
            for s in rows
        ]  # fmt: skip
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table("id", "url", "kind", "every", "last poll", "result", "waiting")
    for row in data:
        polled = (row["last_polled_at"] or "never")[:16].replace("T", " ")
        result = f"{row['last_result']}: {row['last_message']}" if row["last_result"] else ""
        table.add_row(str(row["id"]), row["url"], row["kind"], row["every"], polled, result,
                      str(row["waiting"]))  # fmt: skip
    console.print(table)


@app.command("poll")
def poll_(
    ctx: typer.Context,
    source_id: int | None = typer.Argument(None, help="One source's id (default: all)."),
) -> None:
    """Poll now (one source, or every enabled one); exit 1 if any poll failed."""
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        if source_id is not None:
            ids = [registry.get_source(source_id, session=session).id]
        else:
            ids = [s.id for s in registry.list_sources(session=session) if s.enabled]
    results = _poll(app_ctx, ids)
    failed = [r for r in results if not r.ok]
    added = sum(r.added for r in results)
    console.print(f"{len(results)} polled, {added} new in the inbox", highlight=False)
    if len(failed) == 1 and len(results) == 1:
        raise NewsletterError(failed[0].message)
    if failed:
        raise NewsletterError(f"{len(failed)} of {len(results)} sources failed (see above)")


@app.command("remove")
def remove(
    ctx: typer.Context, source_id: int, yes: bool = typer.Option(False, "--yes", "-y")
) -> None:
    """Stop polling a source; what it brought stays in the inbox and the library."""
    with app_context(ctx).db.session() as session:
        source = registry.get_source(source_id, session=session)
        if not yes and not typer.confirm(f"remove source #{source.id} {source.url}?"):
            raise typer.Abort()
        registry.remove_source(source_id, session=session)
    console.print(f"removed source #{source_id}")


@app.command("inbox")
def inbox_(
    ctx: typer.Context,
    state: ItemState = typer.Option(ItemState.NEW, help="new, accepted or rejected."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What the sources found, waiting to be accepted into the library or rejected."""
    with app_context(ctx).db.session() as session:
        items = inbox.list_items(session=session, state=state.value)
        data: list[dict[str, Any]] = [
            {"id": i.id, "source_id": i.source_id, "title": i.title, "url": i.url,
             "found_at": i.found_at.isoformat()}
            for i in items
        ]  # fmt: skip
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table("id", "source", "title", "url")
    for row in data:
        table.add_row(str(row["id"]), f"#{row['source_id'] or '-'}", row["title"],
                      row["url"] or "")  # fmt: skip
    console.print(table)


@app.command("accept")
def accept(
    ctx: typer.Context, ids: list[int] = typer.Argument(..., help="Inbox item ids.")
) -> None:
    """Add inbox items to the library (merging with what is there)."""
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        report = inbox.accept(ids, session=session, topics=classify_topics(app_ctx.settings),
                              actor="cli", now=utcnow())  # fmt: skip
    console.print(f"accepted {len(ids)}: added {len(report.added)}, merged {len(report.merged)}, "
                  f"already present {len(report.unchanged)}")  # fmt: skip


@app.command("reject")
def reject(
    ctx: typer.Context, ids: list[int] = typer.Argument(..., help="Inbox item ids.")
) -> None:
    """Keep inbox items out of the library (later polls will not offer them again)."""
    with app_context(ctx).db.session() as session:
        count = inbox.reject(ids, session=session, actor="cli", now=utcnow())
    console.print(f"rejected {count}")
