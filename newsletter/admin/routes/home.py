"""Signing in and out, and the dashboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from newsletter.admin import auth, users
from newsletter.admin.access import Editor, admin_state, editor_router, page, public_router
from newsletter.models import Campaign, CampaignStatus, Issue, IssueStatus, Resource, Subscriber
from newsletter.web.context import Client, Ctx, WebContext

login_router = public_router()
router = editor_router()


def safe_next(target: str | None) -> str:
    """Only a path inside the admin: never an open redirect to another site."""
    if not target or not target.startswith("/admin") or target.startswith("/admin/login"):
        return "/admin"
    if "//" in target or "\\" in target or any(ord(ch) < 32 for ch in target):
        return "/admin"
    return target


def _login_page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None,
    email: str = "", next_path: str = "/admin",
) -> Response:  # fmt: skip
    """The form, with a fresh signed nonce (also in a cookie: the login's CSRF defence)."""
    nonce = auth.new_login_nonce()
    response = page(
        request, "login.html.j2", status_code, error=error, email=email, next_path=next_path,
        login_token=auth.login_form_token(ctx.settings, nonce),
    )  # fmt: skip
    response.set_cookie(
        auth.LOGIN_COOKIE, nonce, max_age=auth.LOGIN_FORM_MAX_AGE, path="/admin",
        httponly=True, samesite="lax", secure=not ctx.settings.debug,
    )  # fmt: skip
    return response


def _already_signed_in(request: Request, ctx: WebContext) -> bool:
    token = auth.token_from_cookie(ctx.settings, request.cookies.get(auth.SESSION_COOKIE))
    if token is None:
        return False
    with ctx.db.session() as session:
        return auth.load_identity(token, session=session, now=ctx.clock()) is not None


@login_router.get("/login")
def login_form(request: Request, ctx: Ctx, next: str = "/admin") -> Response:
    if _already_signed_in(request, ctx):
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, ctx, next_path=safe_next(next))


@login_router.post("/login")
def login(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/admin",
) -> Response:
    """Check the form token, the limits, then the password; a success opens a new session."""
    target = safe_next(next)
    if not auth.login_token_ok(ctx.settings, request.cookies.get(auth.LOGIN_COOKIE), csrf_token):
        message = "The form expired or did not come from this site. Please try again."
        return _login_page(request, ctx, status_code=403, error=message, email=email,
                           next_path=target)  # fmt: skip
    limits = admin_state(request).limits
    ip, account = Client.of(request).ip or "unknown", email.strip().casefold()[:320]
    wait = limits.retry_after(ip, account)
    if wait is not None:
        message = f"Too many failed sign-ins. Try again in {max(1, wait // 60)} minute(s)."
        response = _login_page(request, ctx, status_code=429, error=message, email=email,
                               next_path=target)  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    with ctx.db.session() as session:
        token = _sign_in(request, ctx, session, email, password)
        previous = auth.token_from_cookie(ctx.settings, request.cookies.get(auth.SESSION_COOKIE))
        if token is not None and previous is not None:
            auth.close_session(previous, session=session)  # one browser, one session
    if token is None:
        limits.failed(ip, account)
        return _login_page(request, ctx, status_code=401, error="Wrong email or password.",
                           email=email, next_path=target)  # fmt: skip
    limits.succeeded(account)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.SESSION_COOKIE, auth.cookie_value(ctx.settings, token), path="/admin",
        max_age=int(auth.ABSOLUTE.total_seconds()), httponly=True, samesite="lax",
        secure=not ctx.settings.debug,
    )  # fmt: skip
    response.delete_cookie(auth.LOGIN_COOKIE, path="/admin", httponly=True, samesite="lax",
                           secure=not ctx.settings.debug)  # fmt: skip
    return response


def _sign_in(
    request: Request, ctx: WebContext, session: Session, email: str, password: str
) -> str | None:
    user = users.authenticate(email, password, session=session)
    if user is None:
        return None
    client = Client.of(request)
    return auth.open_session(
        user, session=session, now=ctx.clock(), ip=client.ip, user_agent=client.user_agent
    )


@router.post("/logout")
def logout(request: Request, ctx: Ctx, identity: Editor) -> Response:
    """Delete the session row: the cookie is worthless from now on, wherever it was copied."""
    token = auth.token_from_cookie(ctx.settings, request.cookies.get(auth.SESSION_COOKIE))
    if token is not None:
        with ctx.db.session() as session:
            auth.close_session(token, session=session)
    response = RedirectResponse("/admin/login?done=signed-out", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/admin", httponly=True, samesite="lax",
                           secure=not ctx.settings.debug)  # fmt: skip
    return response


def _count(session: Session, query: Select[tuple[int]]) -> int:
    return int(session.scalar(query) or 0)


@router.get("")
def dashboard(request: Request, ctx: Ctx, identity: Editor) -> Response:
    with ctx.db.session() as session:
        counts = {
            "resources": _count(session, select(func.count(Resource.id))),
            "drafts": _count(
                session,
                select(func.count(Issue.id)).where(
                    Issue.status == IssueStatus.DRAFT, Issue.published_at.is_(None)
                ),
            ),
            "sending": _count(
                session,
                select(func.count(Campaign.id)).where(Campaign.status == CampaignStatus.SENDING),
            ),
            "subscribers": _count(
                session,
                select(func.count(Subscriber.id)).where(Subscriber.status == "confirmed"),
            ),
        }
        recent = list(session.scalars(select(Issue).order_by(Issue.number.desc()).limit(5)))
        return page(request, "dashboard.html.j2", counts=counts, recent=recent)
