"""``newsletter db``: migrations by hand (they also run automatically on first use)."""

from __future__ import annotations

import typer

from newsletter import db as dbmod
from newsletter.cli.common import app_context, console

app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context, revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = app_context(ctx).settings
    database = dbmod.connect(settings, migrate=False)
    try:
        dbmod.upgrade(database.engine, revision)
        console.print(f"database at {dbmod.current_revision(database.engine)}")
    finally:
        database.dispose()


@app.command("current")
def current(ctx: typer.Context) -> None:
    """Show the applied migration."""
    database = dbmod.connect(app_context(ctx).settings, migrate=False)
    try:
        console.print(dbmod.current_revision(database.engine) or "empty")
    finally:
        database.dispose()
