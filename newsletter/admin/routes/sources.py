"""The library's inbox: what sources found, to accept or reject, and the sources themselves.

Everything goes through ``newsletter.sources`` (the CLI's modules): accepting
imports through the library's importer, so it merges like any import.  "Poll
now" polls one source in the request's thread pool, bounded by
``fetch_timeout_seconds``; the scheduler polls the rest on their own clocks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.admin.access import Editor, editor_router, page
from newsletter.config import classify_topics
from newsletter.errors import NewsletterError
from newsletter.models.sources import ItemState
from newsletter.sources import inbox, poll, registry
from newsletter.web.context import Ctx, WebContext

router = editor_router()
Line = Annotated[str, Form(max_length=2_000)]
Ids = Annotated[list[int], Form(max_length=1_000)]


def _inbox_page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None,
    notice: str | None = None, url: str = "", every: str = "6h", state: str = ItemState.NEW,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        items = inbox.list_items(session=session, state=state)
        sources = registry.list_sources(session=session)
        extra = {"notice": notice} if notice else {}
        return page(
            request, "library/inbox.html.j2", status_code, items=items, sources=sources,
            waiting=registry.pending_counts(session=session), error=error, url=url,
            every=every, state=state, states=list(ItemState), describe=registry.describe_every,
            **extra,
        )  # fmt: skip


@router.get("/library/inbox")
def inbox_page(request: Request, ctx: Ctx, identity: Editor, state: str = "new") -> Response:
    shown = state if state in set(ItemState) else ItemState.NEW
    return _inbox_page(request, ctx, state=shown)


@router.post("/library/inbox")
def decide(
    request: Request, ctx: Ctx, identity: Editor, action: Line = "",
    item: Ids = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:  # fmt: skip
    """Accept or reject the ticked items."""
    try:
        with ctx.db.session() as session:
            if action == "accept":
                inbox.accept(item, session=session, topics=classify_topics(ctx.settings),
                             actor=identity.email, now=ctx.clock())  # fmt: skip
            elif action == "reject":
                inbox.reject(item, session=session, actor=identity.email, now=ctx.clock())
            else:
                raise NewsletterError("choose Accept or Reject")
    except NewsletterError as exc:
        return _inbox_page(request, ctx, status_code=422, error=str(exc))
    done = "accepted" if action == "accept" else "rejected"
    return RedirectResponse(f"/admin/library/inbox?done={done}", status_code=303)


@router.post("/library/sources")
def add_source(
    request: Request, ctx: Ctx, identity: Editor, url: Line = "", every: Line = "6h"
) -> Response:
    try:
        minutes = registry.parse_every(every)
        with ctx.db.session() as session:
            registry.add_source(url, session=session, every_minutes=minutes, now=ctx.clock(),
                                actor=identity.email)  # fmt: skip
    except NewsletterError as exc:
        return _inbox_page(request, ctx, status_code=422, error=str(exc), url=url, every=every)
    return RedirectResponse("/admin/library/inbox?done=source-added", status_code=303)


@router.post("/library/sources/{source_id:int}/poll")
async def poll_now(request: Request, ctx: Ctx, identity: Editor, source_id: int) -> Response:
    def work() -> poll.PollResult:
        with ctx.db.session() as session:
            registry.get_source(source_id, session=session)
        (result,) = poll.poll_many([source_id], db=ctx.db, settings=ctx.settings, now=ctx.clock)
        return result

    result = await run_in_threadpool(work)
    if not result.ok:
        return await run_in_threadpool(
            _inbox_page, request, ctx, status_code=422, error=f"poll failed: {result.message}"
        )
    return await run_in_threadpool(
        _inbox_page, request, ctx, notice=f"Polled {result.url}: {result.message}."
    )


@router.post("/library/sources/{source_id:int}/remove")
def remove_source(request: Request, ctx: Ctx, identity: Editor, source_id: int) -> Response:
    with ctx.db.session() as session:
        registry.remove_source(source_id, session=session)
    return RedirectResponse("/admin/library/inbox?done=source-removed", status_code=303)
