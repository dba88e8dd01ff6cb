"""Sequences (admins only): create, add steps, pause and resume, and each step's results.

Every action is a function of ``newsletter.automation.sequences`` (the CLI's
too); the scheduler's sweep enrols and queues, the workers send.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from newsletter.admin.access import Admin, admin_router, page
from newsletter.automation import sequences
from newsletter.errors import NewsletterError, ValidationError
from newsletter.models import Issue, IssueStatus
from newsletter.web.context import Ctx, WebContext

router = admin_router()
Line = Annotated[str, Form(max_length=2_000)]


def _triggers(ctx: WebContext) -> list[tuple[str, str]]:
    """(value, label) for the trigger choice."""
    choices = [("confirmed", "When a subscriber confirms")]
    choices += [(f"topic:{t}", f"When a subscriber joins the topic {t}") for t in ctx.topics]
    choices += [("date:signed_up", "From the sign-up date"),
                ("date:confirmed", "From the confirmation date")]  # fmt: skip
    return choices


def _list_page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None,
    name: str = "",
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        rows = sequences.sequence_rows(session)
    return page(
        request, "sequences/list.html.j2", status_code, rows=rows, error=error, name=name,
        triggers=_triggers(ctx),
    )  # fmt: skip


@router.get("/sequences")
def sequences_page(request: Request, ctx: Ctx, identity: Admin) -> Response:
    return _list_page(request, ctx)


@router.post("/sequences")
def create(
    request: Request, ctx: Ctx, identity: Admin, name: Line = "", trigger: Line = "confirmed"
) -> Response:
    try:
        with ctx.db.session() as session:
            row = sequences.create_sequence(
                session, name, trigger, topics=ctx.topics, now=ctx.clock()
            )
            sequence_id = row.id
    except NewsletterError as exc:
        return _list_page(request, ctx, status_code=422, error=str(exc), name=name)
    return RedirectResponse(f"/admin/sequences/{sequence_id}?done=created", status_code=303)


def _detail_page(
    request: Request, ctx: WebContext, sequence_id: int, *, status_code: int = 200,
    error: str | None = None,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        report = sequences.sequence_report(session, sequence_id)
        issues = [
            (i.number, i.title)
            for i in session.scalars(
                select(Issue).where(Issue.status == IssueStatus.READY).order_by(Issue.number.desc())
            )
        ]
    return page(
        request, "sequences/detail.html.j2", status_code, report=report, issues=issues,
        error=error,
    )  # fmt: skip


@router.get("/sequences/{sequence_id:int}")
def sequence_page(request: Request, ctx: Ctx, identity: Admin, sequence_id: int) -> Response:
    return _detail_page(request, ctx, sequence_id)


@router.post("/sequences/{sequence_id:int}/steps")
def add_step(
    request: Request, ctx: Ctx, identity: Admin, sequence_id: int, issue: Line = "",
    delay: Line = "0",
) -> Response:  # fmt: skip
    try:
        if not issue.isdigit():
            raise ValidationError("choose a ready issue")
        minutes = sequences.parse_delay(delay)
        with ctx.db.session() as session:
            sequences.add_step(
                session, sequence_id, int(issue), delay_minutes=minutes, now=ctx.clock()
            )
    except NewsletterError as exc:
        return _detail_page(request, ctx, sequence_id, status_code=422, error=str(exc))
    return RedirectResponse(f"/admin/sequences/{sequence_id}?done=saved", status_code=303)


@router.post("/sequences/{sequence_id:int}/state")
def set_state(
    request: Request, ctx: Ctx, identity: Admin, sequence_id: int, paused: Line = ""
) -> Response:
    with ctx.db.session() as session:
        sequences.set_paused(session, sequence_id, paused == "1")
    done = "paused" if paused == "1" else "resumed"
    return RedirectResponse(f"/admin/sequences/{sequence_id}?done={done}", status_code=303)
