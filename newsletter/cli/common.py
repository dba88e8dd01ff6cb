"""What every CLI command shares: settings and database built once per invocation."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from newsletter.config import Settings, load_settings
from newsletter.db import Database, connect

console = Console()
# Warnings and errors are whole lines (scripts grep them): never wrapped at the width.
err_console = Console(stderr=True, soft_wrap=True)


def progress_bar(on: Console | None = None) -> Progress:
    """The CLI's progress bar for long work; silent when output is not a terminal.

    ``on=err_console`` keeps it off stdout when stdout carries data (``--json``).
    """
    where = on or console
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=where,
        transient=True,
        disable=not where.is_terminal,
    )


@dataclass
class AppContext:
    """Lazily built settings and database for one CLI run (an entry point, not a singleton)."""

    _settings: Settings | None = None
    _db: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = connect(self.settings)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def app_context(ctx: typer.Context) -> AppContext:
    """The ``AppContext`` stored on the root Typer context."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext()
        root.call_on_close(root.obj.close)
    return root.obj
