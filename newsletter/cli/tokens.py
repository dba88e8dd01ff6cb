"""``newsletter tokens``: scoped API tokens for ``/api/v1`` (shown once, stored hashed)."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from newsletter.automation import tokens
from newsletter.cli.common import app_context, console
from newsletter.models.base import utcnow

app = typer.Typer(help="API tokens for /api/v1, each with its scopes.", no_args_is_help=True)
_SCOPES = ", ".join(tokens.SCOPES)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="What the token is for (shown in lists)."),
    scope: list[str] = typer.Option(..., "--scope", help=f"Repeat for several: {_SCOPES}."),
    expires: str = typer.Option("90d", "--expires", help="90d, 12h, 2w from now, or never."),
) -> None:
    """Create a token and print it once: it is stored only as a hash."""
    now = utcnow()
    expires_at = tokens.parse_expiry(expires, now=now)
    with app_context(ctx).db.session() as session:
        row, token = tokens.create_token(
            session, name, scope, expires_at=expires_at, actor="cli", now=now
        )
        ident, scopes = row.id, ", ".join(row.scopes)
    until = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never"
    console.print(f"token #{ident} ({scopes}; expires {until}):", highlight=False)
    sys.stdout.write(token + "\n")
    console.print("Copy it now: it is not shown again.", style="dim", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every token: its prefix, scopes, state, expiry and last use (never the token)."""
    now = utcnow()
    with app_context(ctx).db.session() as session:
        rows = [tokens.token_as_dict(row, now) for row in tokens.list_tokens(session)]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("id", "name", "prefix", "scopes", "state", "expires", "last used")
    for r in rows:
        table.add_row(
            str(r["id"]), r["name"], r["prefix"] + "…", " ".join(r["scopes"]), r["state"],
            (r["expires_at"] or "never")[:16], (r["last_used_at"] or "never")[:16],
        )  # fmt: skip
    console.print(table)


@app.command("revoke")
def revoke(ctx: typer.Context, token_id: int = typer.Argument(..., help="The token's id.")) -> None:
    """Revoke a token; the next request with it is refused."""
    with app_context(ctx).db.session() as session:
        done = tokens.revoke(session, token_id, now=utcnow())
    console.print(f"token #{token_id} " + ("revoked" if done else "was already revoked"))
