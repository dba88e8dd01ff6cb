"""Subscribers (admins only): search, one person's consent and send history, suppress, erase,
and CSV import/export, all through ``newsletter.subscribers.service`` like the CLI.

Every change is recorded on the consent trail as ``admin:<the admin's address>``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import partial
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from newsletter.admin import reports, uploads
from newsletter.admin.access import Admin, admin_router, page
from newsletter.admin.auth import Identity
from newsletter.admin.paging import paging
from newsletter.admin.routes import jobs
from newsletter.errors import ImportFormatError, NotFoundError, ValidationError
from newsletter.jobs import Reporter
from newsletter.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
)
from newsletter.subscribers import formats, service
from newsletter.subscribers import suppression as suppression_list
from newsletter.subscribers.store import Actor
from newsletter.web.context import Client, Ctx, WebContext

router = admin_router()
Line = Annotated[str, Form(max_length=2_000)]
# Reasons an admin picks by hand; "erased" is what erasing does, never a label.
MANUAL_REASONS = [r.value for r in SuppressionReason if r is not SuppressionReason.ERASED]


def actor(request: Request, identity: Identity) -> Actor:
    client = Client.of(request)
    return Actor(source=f"admin:{identity.email}", ip=client.ip, user_agent=client.user_agent)


def _get(session: Session, subscriber_id: int) -> Subscriber:
    row = session.get(Subscriber, subscriber_id)
    if row is None:
        raise NotFoundError(f"no subscriber #{subscriber_id} (erased, or never existed)")
    return row


@router.get("/subscribers")
def subscribers_page(
    request: Request, ctx: Ctx, identity: Admin,
    q: Annotated[str, Query(max_length=320)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> Response:  # fmt: skip
    return _list(request, ctx, q=q, status=status, number=number)


def _list(
    request: Request, ctx: WebContext, *, q: str = "", status: str = "", number: int = 1,
    error: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    """The searchable list, with counts by status."""
    query = select(Subscriber)
    if q.strip():
        query = query.where(reports.search_filter(q))
    if status:
        query = query.where(Subscriber.status == status)
    with ctx.db.session() as session:
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        pages = paging(number, total)
        rows = session.scalars(
            query.order_by(Subscriber.id.desc()).offset(pages.offset).limit(pages.per_page)
        ).all()
        counts = select(Subscriber.status, func.count()).group_by(Subscriber.status)
        return page(
            request, "subscribers/list.html.j2", status_code, rows=rows, pages=pages, q=q,
            status=status, statuses=[s.value for s in SubscriberStatus],
            by_status=dict(session.execute(counts).tuples().all()), error=error,
        )  # fmt: skip


def _detail(
    request: Request, ctx: WebContext, subscriber_id: int, *, status_code: int = 200,
    error: str | None = None,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        row = _get(session, subscriber_id)
        events = session.scalars(
            select(ConsentEvent)
            .where(or_(ConsentEvent.subscriber_id == row.id,
                       ConsentEvent.email_hash == row.email_hash))
            .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
        ).all()  # fmt: skip
        sends = (
            session.execute(
                select(Delivery, Campaign)
                .join(Campaign, Campaign.id == Delivery.campaign_id)
                .where(Delivery.subscriber_id == row.id)
                .order_by(Delivery.id.desc())
                .limit(200)
            )
            .tuples()
            .all()
        )
        held = suppression_list.suppression_for(row.email_hash, session=session)
        return page(
            request, "subscribers/detail.html.j2", status_code, row=row, events=events,
            sends=sends, held=held, reasons=MANUAL_REASONS, error=error,
        )  # fmt: skip


@router.get("/subscribers/{subscriber_id:int}")
def subscriber_page(request: Request, ctx: Ctx, identity: Admin, subscriber_id: int) -> Response:
    return _detail(request, ctx, subscriber_id)


@router.post("/subscribers/{subscriber_id:int}/suppress")
def suppress(
    request: Request, ctx: Ctx, identity: Admin, subscriber_id: int,
    reason: Line = SuppressionReason.MANUAL.value, note: Line = "",
) -> Response:  # fmt: skip
    try:
        if reason not in MANUAL_REASONS:
            raise ValidationError(f"choose a reason: {', '.join(MANUAL_REASONS)}")
        with ctx.db.session() as session:
            email = _get(session, subscriber_id).email
            service.suppress(email, reason, session=session, actor=actor(request, identity),
                             note=note.strip() or None)  # fmt: skip
    except ValidationError as exc:
        return _detail(request, ctx, subscriber_id, status_code=422, error=exc.message)
    return RedirectResponse(f"/admin/subscribers/{subscriber_id}?done=suppressed", status_code=303)


@router.post("/subscribers/{subscriber_id:int}/erase")
def erase(
    request: Request, ctx: Ctx, identity: Admin, subscriber_id: int, confirm_email: Line = ""
) -> Response:
    """Forget the person (only a hash stays); the admin types the address to confirm."""
    with ctx.db.session() as session:
        email = _get(session, subscriber_id).email
        if confirm_email.strip().casefold() != email.casefold():
            error = "type the subscriber's address exactly to confirm the erasure"
            session.rollback()
            return _detail(request, ctx, subscriber_id, status_code=422, error=error)
        service.erase(email, session=session, actor=actor(request, identity))
    return RedirectResponse("/admin/subscribers?done=erased", status_code=303)


@router.get("/subscribers/export.csv")
def export(ctx: Ctx, identity: Admin) -> Response:
    """Every subscriber and suppression, as ``newsletter subscribers export`` writes them."""
    out = io.StringIO()
    with ctx.db.session() as session:
        service.export_csv(out, session=session)
    name = f"subscribers-{ctx.clock():%Y-%m-%d}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.post("/subscribers/import")
async def import_csv(request: Request, ctx: Ctx, identity: Admin) -> Response:
    """Start a background import (or a preview that stores nothing) and show its progress."""
    files, fields = await uploads.form_upload(request)
    pending = fields.get("status") == SubscriberStatus.PENDING.value
    options = ImportOptions(
        status=SubscriberStatus.PENDING if pending else SubscriberStatus.CONFIRMED,
        consent_text=fields.get("consent_text", "").strip()[:2000] or None,
        actor=actor(request, identity),
        fmt=fields.get("format", "").strip() or None,
        dry_run=fields.get("preview") == "1",
    )
    try:
        if options.fmt and options.fmt not in formats.FORMATS:
            raise ValidationError(f"unknown import format {options.fmt!r}")
        return await run_in_threadpool(
            jobs.start, request, ctx, identity, kind="import:subscribers", files=files[:1],
            work=lambda items: partial(_import_file, ctx, items, options),
        )  # fmt: skip
    except ValidationError as exc:
        return await run_in_threadpool(_list, request, ctx, error=exc.message, status_code=422)


@dataclass(frozen=True)
class ImportOptions:
    status: SubscriberStatus
    consent_text: str | None
    actor: Actor
    fmt: str | None = None
    dry_run: bool = False


def _import_file(
    ctx: WebContext, items: list[uploads.Saved], options: ImportOptions, reporter: Reporter
) -> dict[str, object]:
    try:
        with ctx.db.session() as session:
            report = service.import_csv(
                items[0].path, session=session, allowed_topics=ctx.topics,
                status=options.status, consent_text=options.consent_text,
                actor=options.actor, fmt=options.fmt, dry_run=options.dry_run,
                commit_chunks=True, progress=reporter.progress,
            )  # fmt: skip
    except ImportFormatError as exc:
        message = f"nothing was imported: {uploads.shown(str(exc), items)}"
        raise ValidationError(message) from None
    return {"type": "subscribers", **report.as_dict()}
