"""Issue drafting: create, pick resources, arrange sections, override, preview, test, export.

Every change is a plain form POST answered by a redirect back to the editor,
so the page works without JavaScript.  The editor's script sends the same
forms with ``X-Admin-Fragment: 1`` and gets back only the part of the page
that changed (structure and preflight), then reloads the preview frames.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from newsletter.admin import drafting
from newsletter.admin.access import Editor, admin_state, editor_router, page, wants_fragment
from newsletter.admin.templating import NOTICES
from newsletter.errors import NewsletterError, StateError, ValidationError
from newsletter.insights import proposals
from newsletter.issues import editor, preflight, revisions, store
from newsletter.issues.preview import InboxLine, as_dark, inbox_line, sample_values
from newsletter.issues.source import dump_source
from newsletter.message import RenderedEmail, Template
from newsletter.models import Issue, IssueStatus, Resource
from newsletter.render import IssueContent, render_issue
from newsletter.resources import library
from newsletter.resources.links import warnings_for
from newsletter.sending import service
from newsletter.transports import Outcome, sender_from
from newsletter.web.context import Ctx, WebContext
from newsletter.web.security import email_image_sources

router = editor_router()
PICKS = 8
# The preview is the email as a mail client shows it: inline styles, remote images, and
# nothing else; sandboxed twice (CSP here, the iframe's attribute), scripts never run.
# ``allow-same-origin`` lets the editor's own script measure the email to size its frame
# and move the keyboard in and out of it; without ``allow-scripts`` that grants the
# email nothing.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src {images}; font-src https: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-same-origin"
)
Scheme = Literal["light", "dark"]


def preview_csp(base_url: str) -> str:
    return PREVIEW_CSP.format(images=email_image_sources(base_url))


Text = Annotated[str, Form(max_length=20_000)]
Line = Annotated[str, Form(max_length=2_000)]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"date must be YYYY-MM-DD, not {value.strip()[:40]!r}") from None


def editable(issue: Issue) -> bool:
    try:
        editor.ensure_editable(issue)
    except StateError:
        return False
    return True


# --- list and create ------------------------------------------------------------------


@router.get("/issues")
def issues_page(request: Request, ctx: Ctx, identity: Editor) -> Response:
    with ctx.db.session() as session:
        return issues_list_page(request, ctx, session)


def issues_list_page(
    request: Request, ctx: WebContext, session: Session, *, status_code: int = 200,
    error: str | None = None, values: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    issues = store.list_issues(session=session)
    proposed = proposals.next_issue(session, today=ctx.clock().date())
    defaults = {"number": proposed.number, "date": proposed.issue_date.isoformat(),
                "title": proposed.title, "subject": proposed.subject, "preheader": "",
                "resources": []}  # fmt: skip
    return page(
        request, "issues/list.html.j2", status_code, issues=issues, error=error,
        values=values or defaults, counts={i.id: store.item_count(i) for i in issues},
        proposed=proposed, candidates=proposals.candidates(session),
    )  # fmt: skip


@router.post("/issues")
def create_issue(
    request: Request, ctx: Ctx, identity: Editor, number: Line = "", title: Line = "",
    date_: Annotated[str, Form(alias="date", max_length=40)] = "", subject: Line = "",
    preheader: Line = "",
    resources: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:  # fmt: skip
    """A draft issue; the proposed resources the editor ticked go in (in their topic's section)."""
    values = {"number": number, "title": title, "date": date_, "subject": subject,
              "preheader": preheader, "resources": resources}  # fmt: skip
    try:
        if not number.strip().isdigit():
            raise ValidationError("the issue number must be a whole number")
        with ctx.db.session() as session:
            issue = editor.new_issue(
                number=int(number), title=title, issue_date=_date(date_), subject=subject,
                preheader=preheader.strip(), session=session,
            )  # fmt: skip
            for ref in dict.fromkeys(r for r in resources if r.isdigit()):
                drafting.add_proposed(issue, int(ref), session=session)
            created = issue.number
    except ValidationError as exc:
        with ctx.db.session() as session:
            return issues_list_page(request, ctx, session, status_code=422, error=exc.message,
                                values=values)  # fmt: skip
    return RedirectResponse(f"/admin/issues/{created}?done=created", status_code=303)


# --- the editor page ------------------------------------------------------------------


def rendered_report(
    ctx: WebContext, content: IssueContent, images: preflight.ImageCheck | None = None,
    session: Session | None = None,
) -> preflight.PreflightReport:  # fmt: skip
    """Preflight of the email as it would go out now (a render failure is a problem too).

    With ``session``, links the last link check found dead or moved are warned about.
    """
    links = (lambda hrefs: warnings_for(hrefs, session=session)) if session else None
    try:
        rendered = render_issue(content, theme=ctx.settings)
        return preflight.inspect(rendered, images=images, links=links)
    except NewsletterError as exc:
        return preflight.PreflightReport(problems=[str(exc)], warnings=[])


def inbox(ctx: WebContext, content: IssueContent) -> InboxLine | None:
    """The issue as an inbox list shows it (``None``: it does not render; preflight says why)."""
    try:
        rendered = render_issue(content, theme=ctx.settings)  # cached: preflight rendered it
    except NewsletterError:
        return None
    filled = Template.compile(rendered).fill(sample_values(ctx.settings.base_url, content.number))
    return inbox_line(filled.html, subject=filled.subject, sender=sender_from(ctx.settings),
                      preheader=content.preheader)  # fmt: skip


def picks(session: Session, q: str) -> list[Resource]:
    """What the picker offers: search results, or the newest resources before anyone types."""
    if q.strip() and any(ch.isalnum() for ch in q):
        return library.search_resources(q, session=session, limit=PICKS)
    return list(session.scalars(select(Resource).order_by(Resource.id.desc()).limit(PICKS)))


def editor_context(
    ctx: WebContext, session: Session, issue: Issue, q: str = "",
    images: preflight.ImageCheck | None = None,
) -> dict[str, Any]:  # fmt: skip
    content = store.issue_content(issue, session=session)
    used = {i.resource_id for s in issue.sections for i in s.items if i.resource_id is not None}
    return {
        "issue": issue, "content": content,
        "report": rendered_report(ctx, content, images, session),
        "inbox": inbox(ctx, content),
        "editable": editable(issue), "topics": ctx.topics, "statuses": list(IssueStatus),
        "q": q, "picks": (found := picks(session, q)), "used": used,
        "recent": proposals.recent_features(session, [r.id for r in found], exclude=issue.number),
    }  # fmt: skip


def show_editor(
    request: Request, ctx: WebContext, number: int, *, q: str = "", error: str | None = None,
    status_code: int = 200, notice: str | None = None,
) -> Response:  # fmt: skip
    """The whole editor, or only its live part when the editor's script asked for that."""
    fragment = wants_fragment(request)
    template = "issues/_live.html.j2" if fragment else "issues/editor.html.j2"
    with ctx.db.session() as session:
        issue = store.get_issue(number, session=session)
        images = admin_state(request).images
        context = {**editor_context(ctx, session, issue, q, images), "fragment": fragment}
        if notice:
            context["notice"] = notice
        return page(request, template, status_code, error=error, **context)


@router.get("/issues/{number:int}")
def editor_page(
    request: Request, ctx: Ctx, identity: Editor, number: int,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:  # fmt: skip
    return show_editor(request, ctx, number, q=q)


@router.get("/issues/{number:int}/picker")
def picker(
    request: Request, ctx: Ctx, identity: Editor, number: int,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:  # fmt: skip
    """The picker's results alone, for search as you type."""
    with ctx.db.session() as session:
        issue = store.get_issue(number, session=session)
        used = {i.resource_id for s in issue.sections for i in s.items}
        try:
            found, error = picks(session, q), None
        except ValidationError as exc:
            found, error = [], exc.message
        recent = proposals.recent_features(session, [r.id for r in found], exclude=issue.number)
        return page(request, "issues/_picker.html.j2", issue=issue, picks=found, used=used,
                    q=q, editable=editable(issue), error=error, recent=recent)  # fmt: skip


def _sample_email(ctx: WebContext, number: int) -> RenderedEmail:
    with ctx.db.session() as session:
        content = store.issue_content(store.get_issue(number, session=session), session=session)
    rendered = render_issue(content, theme=ctx.settings)
    return Template.compile(rendered).fill(sample_values(ctx.settings.base_url, number))


def _framed(body: str, media_type: str, ctx: WebContext) -> Response:
    headers = {"content-security-policy": preview_csp(ctx.settings.base_url),
               "x-frame-options": "SAMEORIGIN"}  # fmt: skip
    return Response(body, media_type=media_type, headers=headers)


@router.get("/issues/{number:int}/preview")
def preview(ctx: Ctx, identity: Editor, number: int, scheme: Scheme = "light") -> Response:
    """The email with sample values, for the editor's sandboxed preview frames."""
    html = _sample_email(ctx, number).html
    return _framed(as_dark(html) if scheme == "dark" else html, "text/html; charset=utf-8", ctx)


@router.get("/issues/{number:int}/preview.txt")
def preview_text(ctx: Ctx, identity: Editor, number: int) -> Response:
    """The plain-text part, as text-only clients and some screen-reader setups read it."""
    return _framed(_sample_email(ctx, number).text, "text/plain; charset=utf-8", ctx)


@router.get("/issues/{number:int}/export")
def export(ctx: Ctx, identity: Editor, number: int) -> Response:
    """The issue as the YAML file ``newsletter issue import`` reads (``NNN-YYYY-MM.yaml``)."""
    with ctx.db.session() as session:
        issue = store.get_issue(number, session=session)
        text = dump_source(store.export_source(issue, session=session))
        name = f"{issue.number:03d}-{issue.issue_date:%Y-%m}.yaml"
    return Response(
        text,
        media_type="application/yaml; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# --- changes ----------------------------------------------------------------------------

Action = Callable[[Issue, Session], object]


def author(request: Request) -> str:
    identity = getattr(request.state, "identity", None)
    return identity.email if identity is not None else ""


def change(
    request: Request, ctx: WebContext, number: int, action: Action, *, anchor: str = "",
    label: str | Callable[[], str] | None = "edited the issue", done: str = "saved",
) -> Response:  # fmt: skip
    """Run one edit in a transaction; answer with the editor (fragment or redirect).

    The same transaction records a revision (``label``: what the history says), so
    a change is never saved without the means to undo it.
    """
    try:
        with ctx.db.session() as session:
            issue = store.get_issue(number, session=session)
            if label is not None and editable(issue):
                revisions.baseline(issue, author=author(request), session=session)
            action(issue, session)
            if label is not None:
                text = label() if callable(label) else label
                revisions.record(issue, text, author=author(request), session=session)
    except (ValidationError, StateError) as exc:
        code = 409 if isinstance(exc, StateError) else 422
        return show_editor(request, ctx, number, error=str(exc), status_code=code)
    if wants_fragment(request):
        told = NOTICES.get(done) if done != "saved" else None
        return show_editor(request, ctx, number, notice=told)
    return RedirectResponse(f"/admin/issues/{number}?done={done}{anchor}", status_code=303)


@router.post("/issues/{number:int}/details")
def save_details(
    request: Request, ctx: Ctx, identity: Editor, number: int, title: Line = "",
    subject: Line = "", date_: Annotated[str, Form(alias="date", max_length=40)] = "",
    preheader: Line = "", intro: Text = "",
) -> Response:  # fmt: skip
    def action(issue: Issue, session: Session) -> None:
        details = drafting.Details(title, subject, _date(date_), preheader, intro)
        drafting.update_details(issue, details, session=session)

    return change(request, ctx, number, action, anchor="#details", label="edited the details")


@router.post("/issues/{number:int}/status")
def save_status(
    request: Request, ctx: Ctx, identity: Editor, number: int, status: Line = ""
) -> Response:
    return change(
        request, ctx, number, lambda issue, s: editor.set_status(issue, status, session=s),
        label=None,  # the workflow state is not content: no revision
    )  # fmt: skip


@router.post("/issues/{number:int}/sections")
def add_section(
    request: Request, ctx: Ctx, identity: Editor, number: int, heading: Line = "",
    topics: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:  # fmt: skip
    chosen = _known_topics(ctx, topics)
    return change(
        request, ctx, number,
        lambda issue, s: drafting.add_section(issue, heading, chosen, session=s),
        anchor="#sections", label=f"added the section {heading.strip()[:100]!r}",
    )  # fmt: skip


def _known_topics(ctx: WebContext, topics: list[str]) -> list[str]:
    unknown = [t for t in topics if t not in ctx.topics]
    if unknown:
        raise ValidationError(f"unknown topic {unknown[0][:100]!r}")
    return topics


@router.post("/issues/{number:int}/sections/{section_id:int}")
def save_section(
    request: Request, ctx: Ctx, identity: Editor, number: int, section_id: int,
    heading: Line = "", topics: Annotated[list[str], Form()] = [],  # noqa: B006
) -> Response:  # fmt: skip
    chosen = _known_topics(ctx, topics)
    return change(
        request, ctx, number,
        lambda issue, s: drafting.update_section(issue, section_id, heading, chosen, session=s),
        anchor=f"#section-{section_id}", label="edited a section",
    )  # fmt: skip


def _step(direction: str) -> int:
    if direction not in ("up", "down"):
        raise ValidationError("direction must be up or down")
    return -1 if direction == "up" else 1


@router.post("/issues/{number:int}/sections/{section_id:int}/move")
def move_section(
    request: Request, ctx: Ctx, identity: Editor, number: int, section_id: int,
    direction: Line = "",
) -> Response:  # fmt: skip
    step = _step(direction)
    return change(
        request, ctx, number,
        lambda issue, s: drafting.move_section(issue, section_id, step, session=s),
        anchor=f"#section-{section_id}", label="moved a section",
    )  # fmt: skip


@router.post("/issues/{number:int}/sections/{section_id:int}/delete")
def delete_section(
    request: Request, ctx: Ctx, identity: Editor, number: int, section_id: int
) -> Response:
    return change(
        request, ctx, number,
        lambda issue, s: drafting.remove_section(issue, section_id, session=s),
        anchor="#sections", label="removed a section",
    )  # fmt: skip


@router.post("/issues/{number:int}/items")
def add_item(
    request: Request, ctx: Ctx, identity: Editor, number: int, resource_id: Line = "",
    section_id: Line = "",
) -> Response:  # fmt: skip
    """A library resource into a section (``editor.add_item``: once per issue)."""

    def action(issue: Issue, session: Session) -> None:
        if not section_id.isdigit():
            raise ValidationError("add a section first, then choose it")
        heading = drafting.find_section(issue, int(section_id)).heading
        editor.add_item(issue, section=heading, resource=resource_id, session=session)

    return change(request, ctx, number, action, anchor="#sections", label="added an item",
                  done="added-image" if _has_image(ctx, resource_id) else "saved")  # fmt: skip


def _has_image(ctx: WebContext, resource_id: str) -> bool:
    """Whether the resource brings its own image (its image_url): the editor proposes it."""
    if not resource_id.isdigit():
        return False
    with ctx.db.session() as session:
        row = session.get(Resource, int(resource_id))
        return bool(row is not None and row.image_url)


@router.post("/issues/{number:int}/items/{item_id:int}")
async def save_item(
    request: Request, ctx: Ctx, identity: Editor, number: int, item_id: int
) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, ""))[:20_000] for k in drafting.ITEM_OVERRIDES if k in form}
    return await run_in_threadpool(
        change, request, ctx, number,
        lambda issue, s: drafting.update_item(issue, item_id, values, session=s),
        anchor=f"#item-{item_id}", label="edited an item",
    )  # fmt: skip


@router.post("/issues/{number:int}/items/{item_id:int}/move")
def move_item(
    request: Request, ctx: Ctx, identity: Editor, number: int, item_id: int, direction: Line = ""
) -> Response:
    step = _step(direction)
    return change(
        request, ctx, number,
        lambda issue, s: drafting.nudge_item(issue, item_id, step, session=s),
        anchor=f"#item-{item_id}", label="moved an item",
    )  # fmt: skip


@router.post("/issues/{number:int}/items/{item_id:int}/delete")
def delete_item(
    request: Request, ctx: Ctx, identity: Editor, number: int, item_id: int
) -> Response:
    return change(
        request, ctx, number,
        lambda issue, s: editor.remove_item(issue, item_id, session=s),
        anchor="#sections", label="removed an item",
    )  # fmt: skip


@router.post("/issues/{number:int}/test")
def send_test(request: Request, ctx: Ctx, identity: Editor, number: int) -> Response:
    """The whole issue, marked [TEST], to the signed-in user's own address only."""
    try:
        result = service.send_test(ctx.db, ctx.settings, number, identity.email,
                                   messenger=ctx.messenger)  # fmt: skip
    except NewsletterError as exc:
        return show_editor(request, ctx, number, error=f"test not sent: {exc}", status_code=422)
    if not result.by_outcome(Outcome.ACCEPTED):
        detail = result.error or (result.results[0].detail if result.results else "no answer")
        return show_editor(request, ctx, number, error=f"test not sent: {detail}",
                           status_code=502)  # fmt: skip
    if wants_fragment(request):
        return show_editor(request, ctx, number, notice=f"A test was sent to {identity.email}.")
    return RedirectResponse(f"/admin/issues/{number}?done=test-sent", status_code=303)
