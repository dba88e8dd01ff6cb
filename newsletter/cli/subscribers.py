"""``newsletter subscribers``: the list, its suppressions and data-protection requests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from newsletter.cli.common import AppContext, app_context, console, progress_bar
from newsletter.errors import ValidationError
from newsletter.models.subscribers import SubscriberStatus, SuppressionReason
from newsletter.subscribers import confirmation, formats, service
from newsletter.subscribers.confirmation import Addressee
from newsletter.subscribers.csvio import ImportReport
from newsletter.subscribers.store import CLI
from newsletter.transports import build_messenger

app = typer.Typer(
    help="Subscribers, suppressions and data-protection requests.", no_args_is_help=True
)

# plain strings, not Enum options: a bad value is then our one-line error, not a traceback
_STATUSES = ", ".join(SubscriberStatus)
_REASONS = ", ".join(SuppressionReason)


def _topics(app_ctx: AppContext) -> list[str]:
    return [topic.name for topic in app_ctx.settings.topics]


@app.command("add")
def add(
    ctx: typer.Context,
    email: str,
    name: str | None = typer.Option(None, help="Display name."),
    topic: list[str] = typer.Option([], help="A topic; repeat for several."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent was obtained elsewhere: skip the confirmation email."
    ),
    time_zone: str | None = typer.Option(
        None, "--time-zone", help="IANA zone for local-time sends, e.g. Europe/London."
    ),
) -> None:
    """Add one subscriber; without --confirmed they get the confirmation email."""
    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        row = service.add(
            email, session=session, actor=CLI, allowed_topics=_topics(app_ctx), name=name,
            topics=topic, confirmed=confirmed, time_zone=time_zone,
        )  # fmt: skip
        send = not confirmed and service.claim_confirmation_slot(
            row, session=session, now=row.created_at
        )
        addressee = Addressee.of(row)
    console.print(f"added #{addressee.id} {addressee.email} ({row.status})", highlight=False)
    if send:
        messenger = build_messenger(app_ctx.settings)
        try:
            sent = confirmation.send(app_ctx.settings, messenger, addressee, "confirm")
        finally:
            messenger.close()
        console.print("confirmation email sent" if sent else "confirmation email NOT accepted")


@app.command("list")
def list_(
    ctx: typer.Context,
    status: str | None = typer.Option(None, help=f"Only this status: {_STATUSES}."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List subscribers."""
    if status is not None and status not in set(SubscriberStatus):
        raise ValidationError(f"unknown status {status!r} (use one of {_STATUSES})")
    with app_context(ctx).db.session() as session:
        rows = service.list_subscribers(session=session, status=status)
        if as_json:
            console.print_json(json.dumps([service.subscriber_as_dict(r) for r in rows]))
            return
        table = Table("id", "email", "name", "status", "topics", "since")
        for r in rows:
            table.add_row(
                str(r.id), r.email, r.name or "", r.status, ", ".join(r.topics),
                r.created_at.date().isoformat(),
            )  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} subscribers")


def print_report(report: ImportReport) -> None:
    """Counts, then every skipped row with its line number (the first few hundred of each)."""
    would = "would have " if report.dry_run else ""
    tool = "" if report.format == "native" else f"{report.format} export: "
    summary = (
        f"{tool}{would}added {report.added}, updated {report.updated}, "
        f"unchanged {report.unchanged}, invalid {report.count('invalid')}, "
        f"duplicate rows {report.count('duplicates')}, suppressed (skipped) {report.suppressed}"
    )
    if report.suppressions_added:
        summary += f", suppressions imported {report.suppressions_added}"
    console.print(summary, highlight=False, soft_wrap=True)
    for label, kind in (("invalid", "invalid"), ("duplicate", "duplicates"),
                        ("warning", "warnings")):  # fmt: skip
        problems = getattr(report, kind)
        for problem in problems:
            line = f"  {label} line {problem.line}: {problem.message}"
            console.print(line, highlight=False, soft_wrap=True)
        if report.count(kind) > len(problems):
            console.print(f"  ... and {report.count(kind) - len(problems)} more {label} rows")
    if report.unmatched_topics:
        tags = ", ".join(f"{t} ({n})" for t, n in sorted(report.unmatched_topics.items()))
        console.print(f"  tags with no matching topic (ignored): {tags}", highlight=False,
                      soft_wrap=True)  # fmt: skip
    if report.dry_run:
        console.print("dry run: nothing was stored")


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="CSV with a header row (email, name, topics...)."),
    pending: bool = typer.Option(
        False, "--pending", help="Import as pending instead of confirmed (no email is sent)."
    ),
    consent_text: str | None = typer.Option(
        None, help="What these people agreed to, recorded on each consent event."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help=f"Whose export this is: {formats.NAMES} (default: detected)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would change; store nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import subscribers (ours, or a Mailchimp/Substack/listmonk/Buttondown/Ghost export).

    The whole file is checked first (a bad file stores nothing), then merged in
    committed chunks; running it again after an interruption finishes the job.
    """
    app_ctx = app_context(ctx)
    status = SubscriberStatus.PENDING if pending else SubscriberStatus.CONFIRMED
    with progress_bar() as progress, app_ctx.db.session() as session:
        task = progress.add_task("importing", total=None)
        report = service.import_csv(
            path, session=session, allowed_topics=_topics(app_ctx), status=status,
            consent_text=consent_text, fmt=fmt, dry_run=dry_run, commit_chunks=True,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )  # fmt: skip
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        print_report(report)


@app.command("export")
def export(
    ctx: typer.Context, path: Path = typer.Argument(..., help="Output CSV file, or - for stdout.")
) -> None:
    """Export every subscriber and every suppression (erased ones by hash only)."""
    with app_context(ctx).db.session() as session:
        if str(path) == "-":
            service.export_csv(sys.stdout, session=session)
            return
        count = service.export_csv(path, session=session)
    console.print(f"wrote {count} rows to {path}", highlight=False)


@app.command("unsubscribe")
def unsubscribe(ctx: typer.Context, email: str) -> None:
    """Unsubscribe an address (and suppress it, even if it is not a subscriber)."""
    with app_context(ctx).db.session() as session:
        changed = service.unsubscribe_email(email, session=session, actor=CLI)
    console.print("unsubscribed" if changed else "already unsubscribed")


@app.command("suppress")
def suppress(
    ctx: typer.Context,
    email: str,
    reason: str = typer.Option(SuppressionReason.MANUAL.value, help=f"Why: {_REASONS}."),
    note: str | None = typer.Option(None, help="A note for the record."),
) -> None:
    """Put an address on the suppression list: nothing is sent to it, no import re-adds it."""
    with app_context(ctx).db.session() as session:
        added = service.suppress(email, reason, session=session, actor=CLI, note=note)
    console.print(f"suppressed ({reason})" if added else "already suppressed")


@app.command("gdpr-export")
def gdpr_export(ctx: typer.Context, email: str) -> None:
    """Print, as JSON, everything held about an address."""
    with app_context(ctx).db.session() as session:
        data = service.gdpr_export(email, session=session)
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command("erase")
def erase(ctx: typer.Context, email: str, yes: bool = typer.Option(False, "--yes", "-y")) -> None:
    """Delete everything about a person; only a hash stays, so no import re-adds them."""
    if not yes and not typer.confirm(f"erase all data about {email}?"):
        raise typer.Abort()
    with app_context(ctx).db.session() as session:
        existed = service.erase(email, session=session, actor=CLI)
    console.print("erased" if existed else "no subscriber with that address; hash suppressed")


DEMO_CSV = Path(__file__).resolve().parent.parent.parent / "subscribers" / "demo.csv"


def demo_step(app_ctx: AppContext) -> None:
    """``newsletter demo``: import the demo subscribers as confirmed (a re-run changes nothing)."""
    console.print(f"importing {DEMO_CSV.name} (one bad address and one repeat, on purpose)")
    with app_ctx.db.session() as session:
        report = service.import_csv(
            DEMO_CSV, session=session, allowed_topics=_topics(app_ctx),
            consent_text="demo data: consent assumed", actor=CLI,
        )  # fmt: skip
    print_report(report)
    with app_ctx.db.session() as session:
        confirmed = service.list_subscribers(session=session, status=SubscriberStatus.CONFIRMED)
    console.print(f"{len(confirmed)} confirmed subscribers")


@app.command("sunset")
def sunset(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")
) -> None:
    """Mark who stopped reading inactive, reactivate who came back, suppress who never did.

    It also runs before every campaign start (setting ``sunset``).
    """
    from datetime import UTC, datetime

    from newsletter.deliverability import sunset as sunset_rules

    app_ctx = app_context(ctx)
    with app_ctx.db.session() as session:
        report = sunset_rules.run(session, app_ctx.settings, now=datetime.now(UTC))
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    console.print(
        f"{report.marked} marked inactive, {report.reactivated} active again, "
        f"{report.suppressed} suppressed after re-engagement campaign(s) "
        f"{', '.join(f'#{c}' for c in report.campaigns) or 'none'}"
    )
