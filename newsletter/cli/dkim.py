"""``newsletter dkim``: signing keys for mail sent over SMTP or into the outbox."""

from __future__ import annotations

import json

import typer

from newsletter.cli.common import app_context, console
from newsletter.deliverability import dkim
from newsletter.errors import ValidationError

app = typer.Typer(help="DKIM keys and the DNS records that publish them.", no_args_is_help=True)


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    domain: str = typer.Option(None, "--domain", help="d= (default: the From domain)."),
    selector: str = typer.Option(..., "--selector", help="The selector, e.g. 2026a."),
    algorithm: str = typer.Option("rsa", "--algorithm", help="rsa (2048 bits) or ed25519."),
    bits: int = typer.Option(dkim.RSA_BITS, "--bits", help="RSA key size."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing key."),
) -> None:
    """Write a new private key (mode 0600, under var_dir) and print its DNS TXT record."""
    settings = app_context(ctx).settings
    if algorithm not in ("rsa", "ed25519"):
        raise ValidationError(f"--algorithm must be rsa or ed25519, not {algorithm!r}")
    chosen = (domain or settings.dkim_signing_domain).lower().rstrip(".")
    dkim.check_selector(selector)
    path = dkim.key_path(settings.dkim_key_path, chosen, selector)
    private = dkim.generate("ed25519" if algorithm == "ed25519" else "rsa", bits)
    dkim.write_key(path, private, force=force)
    key = dkim.DkimKey(domain=chosen, selector=selector, private=private, path=path)
    console.print(f"private key written to {path} (mode 0600)", highlight=False)
    console.print("publish this TXT record, then add the selector to dkim_selectors:")
    print(dkim.zone_line(key))


@app.command("show")
def show(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")
) -> None:
    """The TXT record of every active selector (dkim_selectors), from the keys on disk."""
    keys = dkim.keys_from(app_context(ctx).settings)
    if as_json:
        rows = [
            {
                "name": k.name,
                "selector": k.selector,
                "algorithm": k.algorithm,
                "path": str(k.path),
                "record": k.txt_record(),
                "strings": dkim.txt_strings(k.txt_record()),
            }
            for k in keys
        ]
        print(json.dumps(rows, indent=2))
        return
    if not keys:
        console.print("DKIM signing is off: no dkim_selectors")
    for key in keys:
        print(dkim.zone_line(key))
