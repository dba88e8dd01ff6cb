"""``newsletter relays check``: connect to every relay (greeting, TLS, login), say how it went."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from newsletter.cli.common import app_context, console
from newsletter.deliverability.relays import relay_statuses

app = typer.Typer(help="The relays mail leaves through.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")
) -> None:
    """Probe each relay now; exit 1 with one line per relay that cannot take mail."""
    statuses = relay_statuses(app_context(ctx).settings)
    if as_json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        for s in statuses:
            head = f"{s.name} ({s.kind}, weight {s.weight}) {s.where}"
            line = f"ok      {head} ({s.seconds:.2f} s)" if s.problem is None else (
                f"PROBLEM {head}: {s.problem}"
            )  # fmt: skip
            console.print(line, highlight=False, soft_wrap=True)
    if any(s.problem for s in statuses):
        raise typer.Exit(1)
