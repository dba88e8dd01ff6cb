"""``newsletter issue``: assemble issues, preview them, and check them before sending."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from newsletter.cli.common import AppContext, app_context, console, err_console
from newsletter.errors import PreflightError, ValidationError
from newsletter.insights import proposals
from newsletter.issues import editor, store
from newsletter.issues.assemble import content_from_source
from newsletter.issues.preflight import ImageCheck, inspect
from newsletter.issues.preview import PreviewFiles, sample_values, write_preview
from newsletter.issues.source import dump_source, load_source
from newsletter.message import RenderedEmail
from newsletter.models import Issue
from newsletter.render import IssueContent, render_issue
from newsletter.resources.links import warnings_for
from newsletter.transports import sender_from

app = typer.Typer(help="Assemble, preview and check issues.", no_args_is_help=True)
SAMPLE_ISSUE = Path(__file__).resolve().parent.parent.parent / "issues" / "042-2018-04.yaml"


def _issue_summary(issue: Issue) -> str:
    sections = len(issue.sections)
    return (
        f"Issue {issue.number} ({issue.slug}): {sections} sections, {store.item_count(issue)} items"
    )


def _is_file(ref: str) -> bool:
    return Path(ref).is_file() or ref.endswith((".yaml", ".yml"))


def load_content(app_ctx: AppContext, ref: str) -> IssueContent:
    """An issue file (resolved against the library, not stored) or a stored issue's number."""
    with app_ctx.db.session() as session:
        if _is_file(ref):
            return content_from_source(load_source(Path(ref)), session=session)
        return store.issue_content(store.get_issue(ref, session=session), session=session)


def _segment(topics: list[str]) -> frozenset[str] | None:
    return frozenset(topics) if topics else None


@app.command("import")
def import_(
    ctx: typer.Context, path: Path = typer.Argument(..., help="An issue YAML file.")
) -> None:
    """Create or replace an issue from its YAML file."""
    source = load_source(path)
    with app_context(ctx).db.session() as session:
        issue = store.import_source(source, session=session)
        console.print(f"imported {_issue_summary(issue)}", highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Issue number or slug."),
    out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """Write an issue as YAML that re-imports to the identical issue."""
    with app_context(ctx).db.session() as session:
        issue = store.get_issue(ref, session=session)
        text = dump_source(store.export_source(issue, session=session))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}", highlight=False)


@app.command("new")
def new(
    ctx: typer.Context,
    number: int | None = typer.Option(None, help="The issue number (default: the last + 1)."),
    title: str | None = typer.Option(
        None, help='Default: the last title renumbered and redated ("Issue 43: May 2018").'
    ),
    date_: str | None = typer.Option(
        None, "--date", help="YYYY-MM-DD (default: the schedule's next run, or a month on)."
    ),
    subject: str | None = typer.Option(None, help="The email subject line (default: the title)."),
    preheader: str = typer.Option("", help="Inbox preview text."),
) -> None:
    """Create an empty draft issue; what is not given is proposed from the last issue.

    Resources worth adding are listed by 'newsletter issue propose'.
    """
    issue_date = None
    if date_ is not None:
        try:
            issue_date = date.fromisoformat(date_)
        except ValueError:
            raise ValidationError(f"--date must be YYYY-MM-DD, not {date_!r}") from None
    with app_context(ctx).db.session() as session:
        proposed = proposals.next_issue(session, today=date.today())
        issue = editor.new_issue(
            number=number if number is not None else proposed.number,
            title=title if title is not None else proposed.title,
            issue_date=issue_date or proposed.issue_date,
            subject=subject if subject is not None else proposed.subject,
            preheader=preheader,
            session=session,
        )
        console.print(f"created {_issue_summary(issue)}", highlight=False)


@app.command("results")
def results(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Issue number or slug."),
    as_json: bool = typer.Option(False, "--json"),
    csv_path: Path | None = typer.Option(
        None, "--csv", dir_okay=False, help="Write the results as CSV here ('-': standard output)."
    ),
) -> None:
    """Each link's and resource's results over every campaign of the issue.

    Unique clickers are counted per campaign and added up: a reader who got the issue in
    two campaigns is two chances to click.
    """
    from newsletter.insights.results import issue_results

    with app_context(ctx).db.session() as session:
        issue = store.get_issue(ref, session=session)
        found = issue_results(session, issue_id=issue.id)
    if csv_path is not None:
        text = found.to_csv()
        if str(csv_path) == "-":
            console.out(text, end="", highlight=False)
        else:
            csv_path.write_text(text, encoding="utf-8")
            err_console.print(f"wrote {csv_path}", highlight=False)
    if as_json:
        console.print_json(json.dumps(found.as_dict()))
    elif csv_path is None:
        table = Table("#", "link", "readers", "clicks", "CTR", "machine clicks",
                      title=f"Issue {found.issue_number}: {len(found.campaign_ids)} campaign(s), "
                      f"{found.delivered} reached")  # fmt: skip
        for row in found.links:
            table.add_row(str(row.position), row.label[:60], str(row.clickers), str(row.clicks),
                          f"{row.ctr:.1%}", str(row.machine_clicks))  # fmt: skip
        console.print(table)


@app.command("propose")
def propose(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    limit: int = typer.Option(proposals.CANDIDATES, min=1, max=100, help="Resources to list."),
) -> None:
    """The next issue's number, date and title, and resources worth adding, with why.

    Nothing is created or added: 'issue new' and 'issue add-item' do that.
    """
    with app_context(ctx).db.session() as session:
        proposed = proposals.next_issue(session, today=date.today())
        found = [c.as_dict() for c in proposals.candidates(session, limit=limit)]
    if as_json:
        console.print_json(json.dumps({"next": proposed.as_dict(), "candidates": found}))
        return
    console.print(
        f"next: {proposed.number} {proposed.title!r} on {proposed.issue_date.isoformat()} "
        f"({proposed.basis})",
        highlight=False,
    )
    if not found:
        console.print("no new resources since the last issue")
    for c in found:
        console.print(f"  #{c['id']} {c['title']}: {'; '.join(c['reasons'])}", highlight=False)
    if found:
        console.print(
            f"add one with: newsletter issue add-item {proposed.number} --section HEADING "
            "--resource ID",
            highlight=False,
        )


@app.command("add-item")
def add_item(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Issue number or slug."),
    section: str = typer.Option(..., help="Section heading (created if new)."),
    resource: str = typer.Option(..., help="Resource id, slug or URL."),
    position: int | None = typer.Option(None, help="1-based position (default: last)."),
) -> None:
    """Add a library resource to a section."""
    with app_context(ctx).db.session() as session:
        issue = store.get_issue(ref, session=session)
        item = editor.add_item(
            issue, section=section, resource=resource, position=position, session=session
        )
        console.print(f"added item #{item.id} to {section!r} at {item.position + 1}")
        rid = item.resource_id or 0
        warning = proposals.recent_features(session, [rid], exclude=issue.number).get(rid)
        if warning:
            err_console.print(f"[yellow]warning:[/] resource #{rid} {warning}", highlight=False)


@app.command("move-item")
def move_item(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Issue number or slug."),
    item_id: int = typer.Argument(..., help="Item id (see `issue show`)."),
    to: int = typer.Option(..., "--to", help="1-based position."),
    section: str | None = typer.Option(None, help="Move into this existing section."),
) -> None:
    """Reorder an item, or move it to another section."""
    with app_context(ctx).db.session() as session:
        issue = store.get_issue(ref, session=session)
        editor.move_item(issue, item_id, to=to, section=section, session=session)
        console.print(f"moved item #{item_id} to position {to}")


@app.command("remove-item")
def remove_item(ctx: typer.Context, ref: str, item_id: int) -> None:
    """Remove an item from an issue."""
    with app_context(ctx).db.session() as session:
        editor.remove_item(store.get_issue(ref, session=session), item_id, session=session)
        console.print(f"removed item #{item_id}")


@app.command("status")
def status(
    ctx: typer.Context, ref: str, value: str = typer.Argument(..., metavar="STATUS")
) -> None:
    """Set an issue's status: draft, ready or archived."""
    with app_context(ctx).db.session() as session:
        issue = store.get_issue(ref, session=session)
        editor.set_status(issue, value, session=session)
        console.print(f"issue {issue.number} is {issue.status}")
        if issue.published_at is not None:
            console.print(f"(it was sent on {issue.published_at:%Y-%m-%d}; the archive keeps it)")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """All issues, newest first."""
    with app_context(ctx).db.session() as session:
        issues = store.list_issues(session=session)
        rows = [
            {
                "number": i.number,
                "title": i.title,
                "date": i.issue_date.isoformat(),
                "status": i.state,
                "items": store.item_count(i),
                "sent": i.published_at.isoformat() if i.published_at else None,
            }
            for i in issues
        ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("number", "title", "date", "status", "items", "sent")
    for row in rows:
        table.add_row(*(str(row[k] if row[k] is not None else "") for k in row))
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., help="Issue number or slug.")) -> None:
    """An issue's sections and items (with the item ids editor commands take)."""
    with app_context(ctx).db.session() as session:
        issue = store.get_issue(ref, session=session)
        content = store.issue_content(issue, session=session)
        console.print(f"[bold]{issue.title}[/] ({issue.state}, {issue.issue_date})")
        console.print(f"subject: {issue.subject}", highlight=False)
        for section, shown in zip(issue.sections, content.sections, strict=True):
            topics = f" [{', '.join(section.topics)}]" if section.topics else ""
            console.print(f"\n[bold]{section.heading}[/]{topics}", highlight=False)
            for row, item in zip(section.items, shown.items, strict=True):
                kind = f" ({item.kind})" if item.kind else ""
                console.print(f"  #{row.id} {item.title}{kind}", highlight=False)


def _render(app_ctx: AppContext, ref: str, topics: list[str]) -> tuple[IssueContent, RenderedEmail]:
    content = load_content(app_ctx, ref)
    return content, render_issue(content, _segment(topics), theme=app_ctx.settings)


def run_preview(
    app_ctx: AppContext, ref: str, out: Path, *, topics: list[str], screenshots: bool
) -> PreviewFiles:
    """Render and write the preview files (shared by ``issue preview`` and the demo)."""
    content, rendered = _render(app_ctx, ref, topics)
    settings = app_ctx.settings
    return write_preview(
        rendered,
        out,
        sender=sender_from(settings),
        values=sample_values(settings.base_url, content.number),
        take_screenshots=screenshots,
    )


@app.command("preview")
def preview(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="An issue YAML file, or a stored issue's number."),
    out: Path | None = typer.Option(None, "--out", help="Folder (default: var/preview)."),
    segment: list[str] = typer.Option([], help="Render for these topics; repeat."),
    screenshots: bool = typer.Option(True, help="Take 600 px and 375 px PNGs in Chromium."),
) -> None:
    """Write email.html, email.txt, email.eml and email-600/375.png."""
    app_ctx = app_context(ctx)
    folder = out or app_ctx.settings.var_dir / "preview"
    files = run_preview(app_ctx, ref, folder, topics=segment, screenshots=screenshots)
    for path in files.written:
        console.print(f"wrote {path}", highlight=False)
    if files.screenshots_skipped:
        err_console.print(f"warning: screenshots skipped: {files.screenshots_skipped}",
                          markup=False, highlight=False, soft_wrap=True)  # fmt: skip


@app.command("preflight")
def preflight(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="An issue YAML file, or a stored issue's number."),
    segment: list[str] = typer.Option([], help="Check the version for these topics; repeat."),
) -> None:
    """Check size, links, images, footer and subject; exit 1 listing every problem.

    Links the last link check found dead or moved are warnings (see resources check-links).
    """
    app_ctx = app_context(ctx)
    _content, rendered = _render(app_ctx, ref, segment)
    images = ImageCheck() if app_ctx.settings.preflight_fetch_images else None
    with app_ctx.db.session() as session:
        report = inspect(
            rendered, images=images, links=lambda hrefs: warnings_for(hrefs, session=session)
        )
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", highlight=False)
    if report.problems:
        for problem in report.problems:
            err_console.print(f"  - {problem}", highlight=False)
        raise PreflightError(report.problems, where=ref)
    size = len(rendered.html.encode("utf-8"))
    console.print(f"preflight ok: {size:,} bytes of HTML, subject {len(rendered.subject)} chars")


def demo_step(app_ctx: AppContext) -> None:
    """``newsletter demo``: import Issue 42 and render its preview into var/preview."""
    path = app_ctx.settings.issues_dir / SAMPLE_ISSUE.name
    path = path if path.is_file() else SAMPLE_ISSUE
    with app_ctx.db.session() as session:
        issue = store.import_source(load_source(path), session=session)
        console.print(f"imported {_issue_summary(issue)} from {path}", highlight=False)
        number = str(issue.number)
    out = app_ctx.settings.var_dir / "preview"
    files = run_preview(app_ctx, number, out, topics=[], screenshots=True)
    console.print(f"preview: {', '.join(str(p) for p in files.written)}", highlight=False)
    if files.screenshots_skipped:  # no Chromium must not stop the demo
        console.print(f"(no screenshots: {files.screenshots_skipped})", markup=False)
