"""The ``newsletter`` command: a thin edge over the library.

Every ``NewsletterError`` becomes one line on stderr and exit code 1; only
genuine bugs produce a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from newsletter.cli import bounces as bounces_cli
from newsletter.cli import campaigns as campaigns_cli
from newsletter.cli import db as db_cli
from newsletter.cli import demo as demo_cli
from newsletter.cli import dkim as dkim_cli
from newsletter.cli import dns as dns_cli
from newsletter.cli import issues as issues_cli
from newsletter.cli import outbox as outbox_cli
from newsletter.cli import relays as relays_cli
from newsletter.cli import resources as resources_cli
from newsletter.cli import schedule as schedule_cli
from newsletter.cli import secret as secret_cli
from newsletter.cli import sequences as sequences_cli
from newsletter.cli import serve as serve_cli
from newsletter.cli import sources as sources_cli
from newsletter.cli import subscribers as subscribers_cli
from newsletter.cli import tokens as tokens_cli
from newsletter.cli import tracking as tracking_cli
from newsletter.cli import users as users_cli
from newsletter.cli import webhooks as webhooks_cli
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
app.add_typer(subscribers_cli.app, name="subscribers")
app.add_typer(users_cli.app, name="users")
app.add_typer(secret_cli.app, name="secret")
app.add_typer(outbox_cli.app, name="outbox")
app.add_typer(tracking_cli.app, name="tracking")
app.command("serve")(serve_cli.serve)
app.add_typer(issues_cli.app, name="issue")
app.add_typer(campaigns_cli.app, name="campaign")
app.command("worker")(campaigns_cli.worker)
app.command("send-test")(campaigns_cli.send_test)
app.command("demo")(demo_cli.demo)
app.add_typer(schedule_cli.app, name="schedule")
app.add_typer(schedule_cli.scheduler_app, name="scheduler")
app.add_typer(bounces_cli.app, name="bounces")
app.add_typer(dkim_cli.app, name="dkim")
app.add_typer(dns_cli.app, name="dns")
app.add_typer(relays_cli.app, name="relays")
app.add_typer(webhooks_cli.app, name="webhooks")
app.add_typer(tokens_cli.app, name="tokens")
app.add_typer(sequences_cli.app, name="sequences")
app.add_typer(sources_cli.app, name="sources")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: Typer reports usage errors; we map our own errors to one line."""
    try:
        app(args=argv, standalone_mode=True)
    except NewsletterError as exc:
        # escape: a message may quote text with brackets (a file's content, an extra's name)
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
