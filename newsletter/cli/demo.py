"""``newsletter demo``: the main job end to end on the embedded default."""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.cli import issues as issues_cli
from newsletter.cli import schedule as schedule_cli
from newsletter.cli import subscribers as subscribers_cli
from newsletter.cli.common import app_context, console
from newsletter.cli.resources import print_report
from newsletter.config import classify_topics
from newsletter.resources import library


def sample_library() -> list[Path]:
    """The bundled sample pages (a copy of the organisation's scraped library)."""
    folder = Path(__file__).resolve().parent.parent / "sample_data" / "library"
    return sorted(folder.glob("*.txt"))


def demo(ctx: typer.Context) -> None:
    """Import the sample library and show it (later steps extend this to a full send)."""
    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    settings.keyring  # noqa: B018 - the demo sends signed links: refuse a bad key up front
    console.rule("1. resource library")
    console.print(f"database: {settings.database_url}")
    records, warnings = library.parse_files(sample_library())
    report = library.ImportReport(skipped=warnings)
    with app_ctx.db.session() as session:
        library.import_records(
            records, session=session, topics=classify_topics(settings), report=report
        )
    print_report(report)
    with app_ctx.db.session() as session:
        rows = library.list_resources(session=session)
        from newsletter.cli.resources import _table

        console.print(_table(rows))
        console.print(f"{len(rows)} resources in the library")
    console.rule("2. Issue 42")
    issues_cli.demo_step(app_ctx)
    console.rule("3. subscribers")
    subscribers_cli.demo_step(app_ctx)
    console.rule("4. schedule Issue 42 and let the scheduler send it")
    schedule_cli.demo_step(app_ctx)
