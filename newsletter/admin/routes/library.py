"""The resource library: browse, filter, search, edit, and import files by upload.

Every change goes through ``newsletter.resources.library``, the module the CLI
uses, so an upload merges duplicates, reports skipped fragments and stores
nothing from a bad file exactly as ``newsletter resources import`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import distinct, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from newsletter.admin import uploads
from newsletter.admin.access import Editor, editor_router, page
from newsletter.admin.paging import paging
from newsletter.admin.routes import jobs
from newsletter.config import classify_topics
from newsletter.errors import NewsletterError, ValidationError
from newsletter.insights import history
from newsletter.jobs import Reporter
from newsletter.models import Resource, ResourceTopic
from newsletter.render.markup import url_problem
from newsletter.resources import library
from newsletter.resources.classify import RESOURCE_TYPES
from newsletter.resources.records import ImportWarning, ResourceRecord
from newsletter.sources import inbox
from newsletter.web.context import Ctx, WebContext

router = editor_router()
TEXT_FIELDS = ("title", "url", "summary", "source", "authors", "image_url", "image_alt",
               "image_credit", "call_to_action")  # fmt: skip
URL_KINDS = {"url": "link", "image_url": "image"}
JSON_KEYS = {"id", "slug", "title", "type", "topics", "url", "source", "summary"}


@dataclass(frozen=True)
class Filters:
    """What the library page is narrowed to (all optional)."""

    q: str = ""
    type: str = ""
    topic: str = ""
    featured: str = ""  # "never", "recent" (the last 3 issues)
    health: str = ""  # "dead", "moved" (link_status, written by the link-health check)
    sort: str = ""  # "ctr": lifetime click-through rate, best first

    @property
    def narrowed(self) -> bool:
        return bool(self.q or self.type or self.topic or self.featured or self.health)

    def query(self) -> str:
        """The filters as a query string, for pagination links."""
        return urlencode({k: v for k, v in vars(self).items() if v})


def all_topics(ctx: WebContext, session: Session) -> list[str]:
    """Configured topics first, then any other topic a resource carries."""
    stored = session.scalars(select(distinct(ResourceTopic.topic)).order_by(ResourceTopic.topic))
    return list(dict.fromkeys([*ctx.topics, *stored]))


def find_resources(filters: Filters, *, session: Session, limit: int = 500) -> list[Resource]:
    """Full-text search when there are words, else the filtered list; filters apply to both."""
    if not filters.q.strip():
        return library.list_resources(
            session=session, topic=filters.topic or None, type_=filters.type or None
        )
    rows = library.search_resources(filters.q, session=session, limit=limit)
    if filters.type:
        rows = [r for r in rows if (r.type or "").casefold() == filters.type.casefold()]
    if filters.topic:
        wanted = filters.topic.casefold()
        rows = [r for r in rows if wanted in {t.casefold() for t in r.topics}]
    return rows


@router.get("/library")
def library_page(
    request: Request, ctx: Ctx, identity: Editor, q: str = "", type: str = "", topic: str = "",
    featured: Annotated[str, Query(max_length=10)] = "",
    health: Annotated[str, Query(max_length=10)] = "",
    sort: Annotated[str, Query(max_length=10)] = "",
    number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:  # fmt: skip
    filters = Filters(
        q=q.strip()[:200], type=type, topic=topic,
        featured=featured if featured in history.FEATURED_FILTERS else "",
        health=health if health in history.HEALTH_FILTERS else "",
        sort="ctr" if sort == "ctr" else "",
    )  # fmt: skip
    with ctx.db.session() as session:
        error = None
        try:
            rows = find_resources(filters, session=session)
        except ValidationError as exc:
            rows, error = [], exc.message
        wanted = history.LibraryFilter(filters.featured, filters.health, filters.sort)
        rows, numbers, featured_in = history.narrow(session, rows, wanted)
        pages = paging(number, len(rows))
        shown = rows[pages.offset : pages.offset + pages.per_page]
        return page(
            request, "library/list.html.j2", rows=shown, pages=pages, filters=filters,
            types=RESOURCE_TYPES, topics=all_topics(ctx, session), error=error,
            inbox_count=inbox.count_new(session=session),
            numbers=numbers, featured_in=featured_in, featured_filters=history.FEATURED_FILTERS,
            health_filters=history.HEALTH_FILTERS,
        )  # fmt: skip


@router.get("/api/resources")
def resources_json(
    ctx: Ctx, identity: Editor, q: str = "", type: str = "", topic: str = "", limit: int = 20
) -> JSONResponse:
    """Search for scripts (JSON); 401 without a session like every ``/admin/api`` endpoint."""
    filters = Filters(q=q.strip()[:200], type=type, topic=topic)
    with ctx.db.session() as session:
        rows = find_resources(filters, session=session)[: max(1, min(limit, 100))]
        data = [
            {k: v for k, v in library.resource_as_dict(r).items() if k in JSON_KEYS} for r in rows
        ]
    return JSONResponse(data)


# --- edit ----------------------------------------------------------------------------


@router.get("/library/{resource_id:int}")
def edit_form(request: Request, ctx: Ctx, identity: Editor, resource_id: int) -> Response:
    with ctx.db.session() as session:
        row = library.get_resource(resource_id, session=session)
        return _edit_page(request, ctx, session, row)


def _edit_page(
    request: Request, ctx: WebContext, session: Session, row: Resource, *,
    status_code: int = 200, error: str | None = None, values: dict[str, Any] | None = None,
) -> Response:  # fmt: skip
    shown = values or {**library.resource_as_dict(row), "other_topics": ""}
    known = all_topics(ctx, session)
    return page(
        request, "library/edit.html.j2", status_code, row=row, values=shown, error=error,
        types=RESOURCE_TYPES, topics=list(dict.fromkeys([*known, *row.topics])),
        featured=history.featured_in(session, [row.id]).get(row.id, []),
        numbers=history.lifetime(session, [row.id]).get(row.id),
    )  # fmt: skip


def _clean(value: str) -> str | None:
    text = value.strip()
    return text or None


def changes_from_form(row: Resource, form: dict[str, Any]) -> dict[str, Any]:
    """Only what the editor changed: saving untouched type or topics must not lock them."""
    changes: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        new = _clean(str(form.get(name, "")))
        if name in ("title", "summary"):
            new = new or ""
        if new != getattr(row, name):
            changes[name] = new
    kind = _clean(str(form.get("type", "")))
    if kind != row.type:
        changes["type"] = kind
    topics = [*form.get("topics", []), *str(form.get("other_topics", "")).split(",")]
    wanted = list(dict.fromkeys(t.strip() for t in topics if t.strip()))
    if wanted != row.topics:
        changes["topics"] = wanted
    for name, kind_of_url in URL_KINDS.items():
        problem = url_problem(changes[name], kind=kind_of_url) if changes.get(name) else None
        if problem:
            raise ValidationError(problem)
    return changes


@router.post("/library/{resource_id:int}")
async def save_resource(request: Request, ctx: Ctx, identity: Editor, resource_id: int) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: form.get(k, "") for k in (*TEXT_FIELDS, "type", "other_topics")}
    values["topics"] = [str(t) for t in form.getlist("topics")]
    return await run_in_threadpool(_save, request, ctx, resource_id, values)


def _save(request: Request, ctx: WebContext, resource_id: int, values: dict[str, Any]) -> Response:
    with ctx.db.session() as session:
        row = library.get_resource(resource_id, session=session)
        try:
            library.edit_resource(row, changes_from_form(row, values), session=session)
        except ValidationError as exc:
            session.rollback()
            row = library.get_resource(resource_id, session=session)
            return _edit_page(request, ctx, session, row, status_code=422, error=exc.message,
                              values=values)  # fmt: skip
    return RedirectResponse(f"/admin/library/{resource_id}?done=saved", status_code=303)


# --- add one by hand ---------------------------------------------------------------------


@router.get("/library/new")
def new_form(request: Request, ctx: Ctx, identity: Editor) -> Response:
    """One resource typed in, as ``newsletter resources add`` takes it."""
    with ctx.db.session() as session:
        return _new_page(request, ctx, session, {})


def _new_page(
    request: Request, ctx: WebContext, session: Session, values: dict[str, Any], *,
    status_code: int = 200, error: str | None = None,
) -> Response:  # fmt: skip
    shown = {**dict.fromkeys((*TEXT_FIELDS, "type", "other_topics"), ""), "topics": [], **values}
    return page(request, "library/new.html.j2", status_code, values=shown, error=error,
                types=RESOURCE_TYPES, topics=all_topics(ctx, session))  # fmt: skip


def record_from_form(values: dict[str, Any]) -> ResourceRecord:
    """The form as the record the CLI builds; a bad link or image URL is refused here."""
    text = {name: _clean(str(values.get(name, ""))) for name in TEXT_FIELDS}
    for name, kind_of_url in URL_KINDS.items():
        given = text[name]
        problem = url_problem(given, kind=kind_of_url) if given else None
        if problem:
            raise ValidationError(problem)
    topics = [*values.get("topics", []), *str(values.get("other_topics", "")).split(",")]
    return ResourceRecord(
        title=text["title"] or "", summary=text["summary"] or "", url=text["url"],
        type=_clean(str(values.get("type", ""))), source=text["source"],
        topics=tuple(dict.fromkeys(t.strip() for t in topics if t.strip())),
        authors=text["authors"], image_url=text["image_url"], image_alt=text["image_alt"],
        image_credit=text["image_credit"], call_to_action=text["call_to_action"], origin="admin",
    )  # fmt: skip


@router.post("/library/new")
async def add_resource(request: Request, ctx: Ctx, identity: Editor) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: form.get(k, "") for k in (*TEXT_FIELDS, "type", "other_topics")}
    values["topics"] = [str(t) for t in form.getlist("topics")]
    return await run_in_threadpool(_add, request, ctx, values)


def _add(request: Request, ctx: WebContext, values: dict[str, Any]) -> Response:
    try:
        with ctx.db.session() as session:
            row = library.add_resource(record_from_form(values), session=session,
                                       topics=classify_topics(ctx.settings))  # fmt: skip
            resource_id = row.id
    except ValidationError as exc:
        with ctx.db.session() as session:
            return _new_page(request, ctx, session, values, status_code=422, error=exc.message)
    return RedirectResponse(f"/admin/library/{resource_id}?done=resource-added", status_code=303)


# --- import ----------------------------------------------------------------------------


@router.get("/library/import")
def import_form(request: Request, identity: Editor) -> Response:
    return page(request, "library/import.html.j2")


@router.post("/library/import")
async def import_upload(request: Request, ctx: Ctx, identity: Editor) -> Response:
    """Start a background import: every file parsed first (one bad file stores nothing)."""
    files, _fields = await uploads.form_upload(request)
    try:
        return await run_in_threadpool(
            jobs.start, request, ctx, identity, kind="import:resources", files=files,
            work=lambda items: partial(_import_files, ctx, items),
        )  # fmt: skip
    except NewsletterError as exc:
        return page(request, "library/import.html.j2", 422, error=str(exc))


def _import_files(
    ctx: WebContext, items: list[uploads.Saved], reporter: Reporter
) -> dict[str, Any]:
    try:
        records, warnings = library.parse_files([item.path for item in items])
    except NewsletterError as exc:
        raise ValidationError(f"nothing was imported: {uploads.shown(str(exc), items)}") from None
    report = library.ImportReport(skipped=warnings)
    with ctx.db.session() as session:
        library.import_records(
            records, session=session, topics=classify_topics(ctx.settings), report=report,
            progress=reporter.progress, commit_chunks=True,
        )  # fmt: skip
    report.skipped = [
        ImportWarning(uploads.shown(w.where, items), w.message) for w in report.skipped
    ]
    return {"type": "resources", **report.as_dict(titles=200)}
