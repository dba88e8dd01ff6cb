"""The ``newsletter`` command: a thin edge over the library.

Every ``NewsletterError`` becomes one line on stderr and exit code 1; only
genuine bugs produce a traceback.
"""

from __future__ import annotations

import sys

import typer

from newsletter.cli import db as db_cli
from newsletter.cli import demo as demo_cli
from newsletter.cli import resources as resources_cli
from newsletter.cli.common import err_console
from newsletter.errors import NewsletterError

app = typer.Typer(
    name="newsletter",
    help="Curate resources, assemble issues, and send them to subscribers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_cli.app, name="db")
app.add_typer(resources_cli.app, name="resources")
app.command("demo")(demo_cli.demo)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with the error mapping."""
    try:
        app(args=argv, standalone_mode=False)
    except NewsletterError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
