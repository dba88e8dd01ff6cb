"""``newsletter outbox``: read what the local outbox transport "sent", without a mail client.

On the embedded default every email is an ``.eml`` file in ``var/outbox/``;
these commands list them and show one as a reader would see it (its plain
text part with every link), which is how the README's tour confirms a
sign-up and finds the unsubscribe link.
"""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import typer
from rich.table import Table

from newsletter.cli.common import app_context, console
from newsletter.errors import NotFoundError

app = typer.Typer(help="Read the emails the local outbox holds.", no_args_is_help=True)


def _messages(folder: Path) -> list[Path]:
    """Newest first (modification time, then name)."""
    files = folder.glob("*.eml") if folder.is_dir() else iter(())
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def _read(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: int = typer.Option(20, min=1, help="How many, newest first."),
    to: str | None = typer.Option(None, help="Only messages to this address."),
) -> None:
    """The newest messages: number (for 'show'), time, recipient, subject."""
    folder = app_context(ctx).settings.outbox_path
    table = Table("#", "to", "subject", "file")
    shown = 0
    for number, path in enumerate(_messages(folder), 1):
        message = _read(path)
        if to and to.lower() not in str(message["To"]).lower():
            continue
        table.add_row(str(number), str(message["To"]), str(message["Subject"]), path.name)
        shown += 1
        if shown >= limit:
            break
    if not shown:
        console.print(f"no messages in {folder}/", highlight=False)
        return
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    number: int = typer.Argument(1, min=1, help="1 is the newest (see 'outbox list')."),
    to: str | None = typer.Option(None, help="The newest message to this address."),
) -> None:
    """One message's headers and plain-text part, links included."""
    folder = app_context(ctx).settings.outbox_path
    messages = [p for p in _messages(folder) if not to or to.lower() in str(_read(p)["To"]).lower()]
    if len(messages) < number:
        raise NotFoundError(f"no message #{number} in {folder}/ (see 'newsletter outbox list')")
    message = _read(messages[number - 1])
    for header in ("From", "To", "Subject", "List-Unsubscribe"):
        if message[header]:
            console.print(
                f"{header}: {message[header]}", highlight=False, markup=False, soft_wrap=True
            )
    text = message.get_body(preferencelist=("plain",))
    body = text.get_content() if text is not None else "(no plain-text part)"
    console.print(f"\n{body}", highlight=False, markup=False, soft_wrap=True)
