"""``newsletter resources``: the editors' library from the command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer
from rich.table import Table

from newsletter.cli.common import app_context, console, progress_bar
from newsletter.config import classify_topics
from newsletter.insights import history
from newsletter.models import Resource
from newsletter.models.base import utcnow
from newsletter.resources import library, links
from newsletter.resources.records import ResourceRecord

app = typer.Typer(help="The resource library.", no_args_is_help=True)


def print_report(report: library.ImportReport) -> None:
    """The import summary: counts, then every skipped fragment with its reason."""
    console.print(
        f"added {len(report.added)}, merged {len(report.merged)}, "
        f"already present {len(report.unchanged)}, skipped {len(report.skipped)}"
        + (" (dry run: nothing was stored)" if report.dry_run else "")
    )
    for warning in report.skipped:
        console.print(f"  skipped {warning.where}: {warning.message}", highlight=False)


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Listing pages (.txt), CSV, JSON, RSS or Atom."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would change; store nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import resources; duplicates merge, and a bad file stores nothing.

    Every file is parsed before anything is written; then records merge in
    committed chunks, so re-running an interrupted import finishes it.
    """
    app_ctx = app_context(ctx)
    records, warnings = library.parse_files(paths)
    report = library.ImportReport(skipped=warnings, dry_run=dry_run)
    with progress_bar() as progress, app_ctx.db.session() as session:
        task = progress.add_task("importing", total=len(records))
        library.import_records(
            records, session=session, topics=classify_topics(app_ctx.settings), report=report,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            commit_chunks=True, dry_run=dry_run,
        )  # fmt: skip
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        print_report(report)


def _table(rows: list[Resource]) -> Table:
    table = Table("id", "title", "type", "source", "topics", show_lines=False)
    for row in rows:
        table.add_row(
            str(row.id), row.title, row.type or "", row.source or "", ", ".join(row.topics)
        )
    return table


def _print_rows(rows: list[Resource], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps([library.resource_as_dict(r) for r in rows]))
    else:
        console.print(_table(rows))


@app.command("list")
def list_(
    ctx: typer.Context,
    topic: str | None = typer.Option(None, help="Only resources tagged with this topic."),
    type_: str | None = typer.Option(None, "--type", help="Only resources of this type."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the library."""
    with app_context(ctx).db.session() as session:
        _print_rows(library.list_resources(session=session, topic=topic, type_=type_), as_json)


@app.command("search")
def search(ctx: typer.Context, query: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Full-text search over titles, summaries and sources."""
    with app_context(ctx).db.session() as session:
        _print_rows(library.search_resources(query, session=session), as_json)


@app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., help="Id, slug or URL.")) -> None:
    """Everything about one resource, the issues it was in, and its lifetime clicks."""
    with app_context(ctx).db.session() as session:
        row = library.get_resource(ref, session=session)
        data = library.resource_as_dict(row)
        featured = history.featured_in(session, [row.id]).get(row.id, [])
        numbers = history.lifetime(session, [row.id]).get(row.id)
        data["link_status"] = row.link_status
    for key, value in data.items():
        console.print(f"[bold]{key}[/]: {value if value is not None else ''}", highlight=False)
    shown = ", ".join(f"{f.number} ({f.title}, {f.state})" for f in featured)
    console.print(f"[bold]featured in[/]: {shown or 'never'}", highlight=False)
    if numbers is not None:
        console.print(
            f"[bold]lifetime[/]: {numbers.clickers} readers clicked ({numbers.clicks} clicks, "
            f"{numbers.machine_clicks} by machines) of {numbers.delivered} reached in "
            f"{len(numbers.campaigns)} campaign(s): click-through {numbers.ctr:.1%}",
            highlight=False,
        )


@app.command("add")
def add(
    ctx: typer.Context,
    title: str = typer.Option(...),
    url: str | None = typer.Option(None),
    summary: str = typer.Option(""),
    type_: str | None = typer.Option(None, "--type"),
    source: str | None = typer.Option(None),
    topic: list[str] = typer.Option([], help="Repeat for several topics."),
) -> None:
    """Add one resource by hand (type and topics are inferred unless given)."""
    app_ctx = app_context(ctx)
    record = ResourceRecord(
        title=title,
        url=url,
        summary=summary,
        type=type_,
        source=source,
        topics=tuple(topic),
        origin="cli",
    )
    with app_ctx.db.session() as session:
        row = library.add_resource(
            record, session=session, topics=classify_topics(app_ctx.settings)
        )
        console.print(f"added #{row.id} {row.slug} ({row.type or 'untyped'})")


@app.command("edit")
def edit(
    ctx: typer.Context,
    ref: str,
    title: str | None = typer.Option(None),
    url: str | None = typer.Option(None),
    summary: str | None = typer.Option(None),
    type_: str | None = typer.Option(None, "--type"),
    source: str | None = typer.Option(None),
    topic: list[str] | None = typer.Option(None, help="Replaces all topics; repeat."),
) -> None:
    """Change fields of a resource; a type or topics set here survive re-imports."""
    given = {"title": title, "url": url, "summary": summary, "type": type_, "source": source}
    changes: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if topic:
        changes["topics"] = topic
    with app_context(ctx).db.session() as session:
        row = library.get_resource(ref, session=session)
        library.edit_resource(row, changes, session=session)
        console.print(f"updated #{row.id} {row.slug}")


@app.command("delete")
def delete(ctx: typer.Context, ref: str, yes: bool = typer.Option(False, "--yes", "-y")) -> None:
    """Delete a resource."""
    with app_context(ctx).db.session() as session:
        row = library.get_resource(ref, session=session)
        if not yes and not typer.confirm(f"delete #{row.id} {row.title!r}?"):
            raise typer.Abort()
        library.delete_resource(row, session=session)
        console.print(f"deleted #{row.id}")


@app.command("check-links")
def check_links(
    ctx: typer.Context,
    stale_hours: float | None = typer.Option(
        None, "--older-than", help="Only links not checked for this many hours (default: all)."
    ),
) -> None:
    """Check every resource's URL (HEAD, else GET) and mark it ok, dead or moved.

    Issue preflight then warns about each dead or moved link before scheduling.
    """
    app_ctx = app_context(ctx)
    older = timedelta(hours=stale_hours) if stale_hours is not None else None
    with progress_bar() as progress:
        task = progress.add_task("checking links", total=None)
        report = links.check_links(
            app_ctx.db, app_ctx.settings, now=utcnow, older_than=older,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )  # fmt: skip
    console.print(f"checked {report.checked}: {report.ok} ok, {report.dead} dead, "
                  f"{report.moved} moved, {report.unknown} inconclusive")  # fmt: skip
    with app_ctx.db.session() as session:
        rows = library.list_resources(session=session)
        for row in rows:
            if row.link_status == "dead":
                console.print(f"  dead  #{row.id} {row.url} ({row.link_detail})", highlight=False)
            elif row.link_status == "moved":
                console.print(f"  moved #{row.id} {row.url} -> {row.link_final_url}",
                              highlight=False)  # fmt: skip
