"""Editing that forgives: drag-and-drop order, undo, the revision history, duplicating.

Each change goes through ``issues.change`` (one transaction, a revision
recorded in it, the editor's fragment or a redirect as the answer), so undo
and the history see the drag-and-drop order and a restore exactly like any
other edit.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from newsletter.admin import drafting
from newsletter.admin.access import Editor, editor_router, page
from newsletter.admin.routes.issues import change, editable, issues_list_page
from newsletter.errors import ValidationError
from newsletter.issues import revisions, store
from newsletter.models import Issue
from newsletter.web.context import Ctx

router = editor_router()


def parse_order(text: str) -> list[tuple[int, list[int]]]:
    """``[{"section": 3, "items": [7, 5]}, ...]`` as the editor's script sends it."""
    try:
        data = json.loads(text)
        order = [(int(s["section"]), [int(i) for i in s["items"]]) for s in data]
    except (ValueError, TypeError, KeyError):
        raise ValidationError("the new order could not be read; reload the editor") from None
    return order


@router.post("/issues/{number:int}/order")
def save_order(
    request: Request, ctx: Ctx, identity: Editor, number: int,
    order: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:  # fmt: skip
    """The order of every section and item after a drag and drop."""
    parsed = parse_order(order)
    return change(
        request, ctx, number, lambda issue, s: drafting.reorder(issue, parsed, session=s),
        anchor="#sections", label="reordered by drag and drop",
    )  # fmt: skip


@router.post("/issues/{number:int}/undo")
def undo(request: Request, ctx: Ctx, identity: Editor, number: int) -> Response:
    """Back to before the last change (itself recorded, so it can be undone in turn)."""
    undone: list[str] = []

    def action(issue: Issue, session: Session) -> None:
        undone.append(revisions.undo(issue, session=session))

    def label() -> str:
        return f"undid: {undone[0]}" if undone else "undo"

    return change(request, ctx, number, action, anchor="#sections", label=label,
                  done="undone")  # fmt: skip


@router.get("/issues/{number:int}/revisions")
def history_page(request: Request, ctx: Ctx, identity: Editor, number: int) -> Response:
    with ctx.db.session() as session:
        issue = store.get_issue(number, session=session)
        rows = revisions.history(issue, session=session)
        return page(request, "issues/revisions.html.j2", issue=issue, revisions=rows,
                    editable=editable(issue))  # fmt: skip


@router.get("/issues/{number:int}/revisions/{revision_id:int}")
def revision_page(
    request: Request, ctx: Ctx, identity: Editor, number: int, revision_id: int
) -> Response:
    with ctx.db.session() as session:
        issue = store.get_issue(number, session=session)
        row = revisions.get_revision(issue, revision_id, session=session)
        lines = revisions.diff(row, session=session)
        latest = revisions.history(issue, session=session, limit=1)
        return page(request, "issues/revision.html.j2", issue=issue, revision=row, lines=lines,
                    editable=editable(issue), latest=latest[0].id == row.id)  # fmt: skip


@router.post("/issues/{number:int}/revisions/{revision_id:int}/restore")
def restore(
    request: Request, ctx: Ctx, identity: Editor, number: int, revision_id: int
) -> Response:
    def action(issue: Issue, session: Session) -> None:
        row = revisions.get_revision(issue, revision_id, session=session)
        revisions.restore(issue, row, session=session)

    return change(request, ctx, number, action, label=f"restored revision #{revision_id}",
                  done="restored")  # fmt: skip


@router.post("/issues/duplicate-last")
def duplicate_last(request: Request, ctx: Ctx, identity: Editor) -> Response:
    """Next month's draft from this month's issue (sections, items, intro)."""
    try:
        with ctx.db.session() as session:
            issue = drafting.duplicate_last(ctx.clock().date(), session=session)
            number = issue.number
    except ValidationError as exc:
        with ctx.db.session() as session:
            return issues_list_page(request, ctx, session, status_code=422, error=exc.message)
    return RedirectResponse(f"/admin/issues/{number}?done=duplicated", status_code=303)
