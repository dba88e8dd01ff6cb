"""Integrations (admins only): webhook endpoints with their delivery log, and API tokens.

A new endpoint's secret and a new token are shown on the page that answers
the form, once: they are never shown again (the token is not even kept).
Replays and test events are queued for the dispatcher, never sent from the
request, so a slow endpoint cannot slow the admin either.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from newsletter.admin.access import Admin, admin_router, page
from newsletter.automation import tokens
from newsletter.automation.webhooks import events, outbox, registry
from newsletter.errors import NewsletterError
from newsletter.web.context import Ctx, WebContext

router = admin_router()
Line = Annotated[str, Form(max_length=2_000)]
Choices = Annotated[list[str], Form(max_length=20)]


def _hooks_page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None,
    secret: str | None = None, url: str = "", description: str = "",
    chosen: list[str] | None = None,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        endpoints = registry.list_endpoints(session)
        return page(
            request, "settings/webhooks.html.j2", status_code, endpoints=endpoints,
            events=events.EVENTS, error=error, secret=secret, url=url, description=description,
            chosen=chosen if chosen is not None else list(events.EVENTS),
            allow_private=ctx.settings.webhook_allow_private_addresses,
        )  # fmt: skip


@router.get("/settings/webhooks")
def webhooks_page(request: Request, ctx: Ctx, identity: Admin) -> Response:
    return _hooks_page(request, ctx)


@router.post("/settings/webhooks")
def add_webhook(
    request: Request, ctx: Ctx, identity: Admin, url: Line = "", description: Line = "",
    event: Choices = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:  # fmt: skip
    try:
        with ctx.db.session() as session:
            _, secret = registry.create_endpoint(
                session, url, event, allow_private=ctx.settings.webhook_allow_private_addresses,
                actor=identity.email, now=ctx.clock(), description=description,
            )  # fmt: skip
    except NewsletterError as exc:
        return _hooks_page(request, ctx, status_code=422, error=str(exc), url=url,
                           description=description, chosen=event)  # fmt: skip
    return _hooks_page(request, ctx, status_code=201, secret=secret)


def _endpoint_page(
    request: Request, ctx: WebContext, endpoint_id: int, *, status_code: int = 200,
    error: str | None = None,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        endpoint = registry.get_endpoint(session, endpoint_id)
        rows = registry.deliveries(session, endpoint_id=endpoint_id, limit=200)
        return page(
            request, "settings/webhook.html.j2", status_code, endpoint=endpoint, rows=rows,
            error=error,
        )  # fmt: skip


@router.get("/settings/webhooks/{endpoint_id:int}")
def endpoint_page(request: Request, ctx: Ctx, identity: Admin, endpoint_id: int) -> Response:
    return _endpoint_page(request, ctx, endpoint_id)


@router.post("/settings/webhooks/{endpoint_id:int}/state")
def set_state(
    request: Request, ctx: Ctx, identity: Admin, endpoint_id: int, enabled: Line = ""
) -> Response:
    with ctx.db.session() as session:
        registry.set_enabled(session, endpoint_id, enabled == "1",
                             reason=f"disabled by {identity.email}")  # fmt: skip
    return RedirectResponse(f"/admin/settings/webhooks/{endpoint_id}?done=saved", status_code=303)


@router.post("/settings/webhooks/{endpoint_id:int}/test")
def send_test(request: Request, ctx: Ctx, identity: Admin, endpoint_id: int) -> Response:
    with ctx.db.session() as session:
        endpoint = registry.get_endpoint(session, endpoint_id)
        outbox.send_test(session, endpoint, actor=identity.email, now=ctx.clock())
    return RedirectResponse(f"/admin/settings/webhooks/{endpoint_id}?done=queued", status_code=303)


@router.post("/settings/webhooks/{endpoint_id:int}/replay/{delivery_id:int}")
def replay(
    request: Request, ctx: Ctx, identity: Admin, endpoint_id: int, delivery_id: int
) -> Response:
    try:
        with ctx.db.session() as session:
            registry.replay(session, delivery_id, now=ctx.clock())
    except NewsletterError as exc:
        return _endpoint_page(request, ctx, endpoint_id, status_code=409, error=str(exc))
    return RedirectResponse(f"/admin/settings/webhooks/{endpoint_id}?done=queued", status_code=303)


@router.post("/settings/webhooks/{endpoint_id:int}/delete")
def remove(request: Request, ctx: Ctx, identity: Admin, endpoint_id: int) -> Response:
    with ctx.db.session() as session:
        registry.remove_endpoint(session, endpoint_id)
    return RedirectResponse("/admin/settings/webhooks?done=removed", status_code=303)


# --- API tokens ------------------------------------------------------------------------------


def _tokens_page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None,
    token: str | None = None, name: str = "", expires: str = "90d",
    chosen: list[str] | None = None,
) -> Response:  # fmt: skip
    now = ctx.clock()
    with ctx.db.session() as session:
        rows = [tokens.token_as_dict(row, now) for row in tokens.list_tokens(session)]
    return page(
        request, "settings/tokens.html.j2", status_code, rows=rows, scopes=tokens.SCOPES,
        error=error, token=token, name=name, expires=expires, chosen=chosen or [],
    )  # fmt: skip


@router.get("/settings/tokens")
def tokens_page(request: Request, ctx: Ctx, identity: Admin) -> Response:
    return _tokens_page(request, ctx)


@router.post("/settings/tokens")
def create_token(
    request: Request, ctx: Ctx, identity: Admin, name: Line = "", expires: Line = "90d",
    scope: Choices = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:  # fmt: skip
    now = ctx.clock()
    try:
        with ctx.db.session() as session:
            _, token = tokens.create_token(
                session, name, scope, expires_at=tokens.parse_expiry(expires, now=now),
                actor=identity.email, now=now,
            )  # fmt: skip
    except NewsletterError as exc:
        return _tokens_page(request, ctx, status_code=422, error=str(exc), name=name,
                            expires=expires, chosen=scope)  # fmt: skip
    return _tokens_page(request, ctx, status_code=201, token=token)


@router.post("/settings/tokens/{token_id:int}/revoke")
def revoke_token(request: Request, ctx: Ctx, identity: Admin, token_id: int) -> Response:
    with ctx.db.session() as session:
        tokens.revoke(session, token_id, now=ctx.clock())
    return RedirectResponse("/admin/settings/tokens?done=revoked", status_code=303)
