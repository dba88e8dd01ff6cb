"""``newsletter users``: the accounts that sign in to the web admin (``/admin``).

Passwords are read from a hidden prompt, or from standard input with
``--password-stdin`` (for scripts), never from the command line, where they
would end up in shell history and the process list.
"""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from newsletter.admin import users
from newsletter.cli.common import app_context, console
from newsletter.errors import ValidationError
from newsletter.models import Role

app = typer.Typer(
    help="Admin accounts (editors and admins) for the web admin.", no_args_is_help=True
)
_ROLES = ", ".join(Role)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ValidationError("no password on standard input")
        return line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("add")
def add(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The address the user signs in with."),
    role: str = typer.Option(Role.EDITOR.value, "--role", help=f"One of: {_ROLES}."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
) -> None:
    """Add a user; editors work on the library and issues, admins on everything."""
    users.check_role(role)
    password = _read_password(password_stdin)
    with app_context(ctx).db.session() as session:
        user = users.add_user(email, password, role, session=session)
        console.print(f"added {user.email} ({user.role})", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every account with its role and last sign-in."""
    with app_context(ctx).db.session() as session:
        rows = users.list_users(session=session)
    if as_json:
        data = [
            {"email": u.email, "role": u.role,
             "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}
            for u in rows
        ]  # fmt: skip
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table("email", "role", "last sign-in")
    for user in rows:
        last = f"{user.last_login_at:%Y-%m-%d %H:%M} UTC" if user.last_login_at else "never"
        table.add_row(user.email, user.role, last)
    console.print(table)


@app.command("remove")
def remove(
    ctx: typer.Context,
    email: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove a user; their sessions end at once."""
    if not yes and not typer.confirm(f"remove the account {email}?"):
        raise typer.Abort()
    with app_context(ctx).db.session() as session:
        users.remove_user(email, session=session)
    console.print(f"removed {email}", highlight=False)
