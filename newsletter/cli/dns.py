"""``newsletter dns check``: SPF, DKIM, DMARC and the bounce MX, each problem with its fix."""

from __future__ import annotations

import json

import typer

from newsletter.cli.common import app_context, console
from newsletter.deliverability.dnscheck import check_dns

app = typer.Typer(help="The DNS records sending from your own domain needs.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")
) -> None:
    """Look the records up; exit 1 with one line per problem (and the record to publish)."""
    findings = check_dns(app_context(ctx).settings)
    problems = [f for f in findings if not f.ok]
    if as_json:
        print(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            mark = "ok     " if finding.ok else "PROBLEM"
            console.print(f"{mark} {finding.line()}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
