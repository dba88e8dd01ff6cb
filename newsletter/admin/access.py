"""Who may do what in the admin, enforced once per router rather than once per handler.

Every admin router is built by ``editor_router`` or ``admin_router``, which
attach the sign-in, role and CSRF checks as router dependencies: a handler
added later is protected without anyone remembering to protect it.  The
routers use ``AdminRoute``, which turns the admin's refusals into the right
answer (a redirect to the login page for a page, 401 for the JSON API, 403 for
a missing role or CSRF token) and adds the admin's security headers: a CSP
that allows our own scripts (the public pages allow none) and no framing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from newsletter.admin import auth
from newsletter.admin.templating import build_env, html, notice_for
from newsletter.errors import NewsletterError
from newsletter.issues.preflight import ImageCheck
from newsletter.web.context import Ctx, WebContext
from newsletter.web.errors import status_for

ADMIN_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
FRAGMENT_HEADER = "x-admin-fragment"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the JSON API answers 401."""


class Forbidden(Exception):
    """Signed in, but not allowed (an editor on an admin page, a missing CSRF token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class AdminState:
    """Per-app admin state: templates and login limits (kept on ``app.state``, not globals)."""

    env: jinja2.Environment
    limits: auth.LoginLimits = field(default_factory=auth.LoginLimits.default)
    images: ImageCheck | None = None  # preflight's image fetches, cached across edits


_state_lock = threading.Lock()


def admin_state(request: Request) -> AdminState:
    """The app's admin state, built on first use (``create_app`` needs no admin wiring)."""
    state = getattr(request.app.state, "admin", None)
    if state is None:
        with _state_lock:
            state = getattr(request.app.state, "admin", None)
            if state is None:
                context: WebContext = request.app.state.web
                images = ImageCheck() if context.settings.preflight_fetch_images else None
                state = AdminState(env=build_env(context.settings), images=images)
                request.app.state.admin = state
    assert isinstance(state, AdminState)
    return state


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/admin/api/")


def wants_fragment(request: Request) -> bool:
    """The editor's script asked for the changed part of the page instead of a redirect."""
    return request.headers.get(FRAGMENT_HEADER) == "1"


# --- dependencies ----------------------------------------------------------------------


def signed_in(request: Request, ctx: Ctx) -> auth.Identity:
    """The identity behind the session cookie, or ``LoginRequired``."""
    token = auth.token_from_cookie(ctx.settings, request.cookies.get(auth.SESSION_COOKIE))
    if token is None:
        raise LoginRequired()
    with ctx.db.session() as session:
        identity = auth.load_identity(token, session=session, now=ctx.clock())
    if identity is None:
        raise LoginRequired()
    request.state.identity = identity
    return identity


Editor = Annotated[auth.Identity, Depends(signed_in)]


def admin_only(identity: Editor) -> auth.Identity:
    if not identity.is_admin:
        raise Forbidden("this page is for admins; editors work on the library and issues")
    return identity


Admin = Annotated[auth.Identity, Depends(admin_only)]


async def csrf_checked(request: Request, identity: Editor) -> None:
    """Every unsafe request echoes the session's token (header for scripts, field for forms)."""
    if request.method not in UNSAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if not given and "form" in request.headers.get("content-type", ""):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not auth.tokens_match(identity.csrf_token, given):
        raise Forbidden("the form expired or did not come from this site; reload and try again")


# --- rendering -------------------------------------------------------------------------


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """An admin page with the identity, CSRF token and notice every layout needs."""
    identity: auth.Identity | None = getattr(request.state, "identity", None)
    context.setdefault("notice", notice_for(request))
    context.setdefault("error", None)
    return html(
        admin_state(request).env, template, status_code, identity=identity,
        csrf_token=identity.csrf_token if identity else "", path=request.url.path, **context,
    )  # fmt: skip


def _refusal(request: Request, exc: Exception) -> Response:
    """Pages get a page; scripts (the JSON API, the editor's fragments) get one line of JSON."""
    scripted = is_api(request) or wants_fragment(request)
    if isinstance(exc, LoginRequired):
        if scripted:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        return RedirectResponse(f"/admin/login?next={quote(request.url.path)}", status_code=303)
    if isinstance(exc, Forbidden):
        code, message = 403, exc.message
    elif isinstance(exc, NewsletterError):
        code, message = status_for(exc), str(exc)
    else:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        code, message = 422, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg')}"
    if scripted:
        return JSONResponse({"detail": message}, status_code=code)
    return page(request, "error.html.j2", code, message=message, code=code)


def secure(response: Response) -> Response:
    """The admin's headers, unless the handler chose its own (the sandboxed preview does)."""
    response.headers.setdefault("content-security-policy", ADMIN_CSP)
    response.headers.setdefault("x-frame-options", "DENY")
    response.headers.setdefault("cache-control", "no-store")
    return response


class AdminRoute(APIRoute):
    """Maps refusals and ``NewsletterError`` to admin answers, and adds the admin headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except (LoginRequired, Forbidden, NewsletterError, RequestValidationError) as exc:
                response = _refusal(request, exc)
            return secure(response)

        return guarded


def editor_router() -> APIRouter:
    """Pages for editors and admins: the library and issues."""
    return APIRouter(
        prefix="/admin", route_class=AdminRoute, include_in_schema=False,
        dependencies=[Depends(signed_in), Depends(csrf_checked)],
    )  # fmt: skip


def admin_router() -> APIRouter:
    """Pages for admins only: subscribers, sends, schedules, settings."""
    return APIRouter(
        prefix="/admin", route_class=AdminRoute, include_in_schema=False,
        dependencies=[Depends(admin_only), Depends(csrf_checked)],
    )  # fmt: skip


def public_router() -> APIRouter:
    """The login form: the one admin page without a session (it has its own CSRF check)."""
    return APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)
