"""``newsletter secret``: where the signing key comes from; rotating it without breaking links."""

from __future__ import annotations

import typer

from newsletter.cli.common import app_context, console
from newsletter.keyring import key_file, rotate

app = typer.Typer(help="The key that signs unsubscribe and preference links.", no_args_is_help=True)


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Say which key signs and how many older keys still verify (never prints a key)."""
    keyring = app_context(ctx).settings.keyring
    where = "the secret_key setting" if keyring.source == "settings" else keyring.source
    console.print(f"signing key: from {where}", highlight=False)
    console.print(f"older keys still verifying links already sent: {len(keyring.previous)}")


@app.command("rotate")
def rotate_key(ctx: typer.Context) -> None:
    """Put a new signing key in the key file; old keys keep verifying mail already sent."""
    settings = app_context(ctx).settings
    if settings.secret_key is not None:
        console.print(
            "the signing key comes from the secret_key setting: set the new key there and "
            "add the old one to previous_secret_keys (NEWSLETTER_PREVIOUS_SECRET_KEYS='[\"...\"]')",
            markup=False,
        )
        raise typer.Exit(1)
    keyring = rotate(settings.var_dir)
    console.print(
        f"new signing key written to {key_file(settings.var_dir)}; "
        f"{len(keyring.previous)} older key(s) still verify. Restart running processes "
        "(serve, worker, scheduler) so they sign with the new key.",
        highlight=False,
    )
