"""Settings (admins only): the configuration in effect, read-only, and the admin accounts.

Settings come from ``newsletter.toml`` and the environment, so the page shows
them rather than editing them (a web form that rewrote the deployment's
configuration would fight whoever manages it); secrets are never shown.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from newsletter.admin import users
from newsletter.admin.access import Admin, admin_router, page
from newsletter.db import redact
from newsletter.errors import StateError, ValidationError
from newsletter.models import Role, User
from newsletter.web.context import Ctx, WebContext

router = admin_router()
Line = Annotated[str, Form(max_length=2_000)]


def shown_settings(ctx: WebContext) -> list[tuple[str, str]]:
    """What an admin may read: no secret, and the database URL without its password."""
    s = ctx.settings
    return [
        ("Organisation", s.organisation), ("Postal address", s.postal_address),
        ("Public URL", s.base_url), ("From", f"{s.from_name} <{s.from_email}>"),
        ("Reply-To", s.reply_to or "(none)"), ("List-Id", s.list_id),
        ("Time zone", s.timezone), ("Transport", s.transport),
        ("Batch size", str(s.batch_size)), ("Database", redact(s.database_url)),
        ("Topics", ", ".join(ctx.topics)),
    ]  # fmt: skip


def _page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None,
    email: str = "", role: str = Role.EDITOR.value,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        return page(
            request, "settings/index.html.j2", status_code, settings=shown_settings(ctx),
            accounts=users.list_users(session=session), roles=[r.value for r in Role],
            error=error, email=email, role=role,
        )  # fmt: skip


@router.get("/settings")
def settings_page(request: Request, ctx: Ctx, identity: Admin) -> Response:
    return _page(request, ctx)


@router.get("/settings/deliverability")
def deliverability_page(
    request: Request, ctx: Ctx, identity: Admin, relays: Annotated[str, Query(max_length=10)] = ""
) -> Response:
    """The DNS check (looked up now), relay health (probed on request) and warm-up."""
    from newsletter.deliverability.admin import overview

    data = overview(ctx.settings, ctx.db, probe=relays == "check")
    return page(request, "settings/deliverability.html.j2", **data)


@router.post("/users")
def add_user(
    request: Request, ctx: Ctx, identity: Admin, email: Line = "", role: Line = "",
    password: Line = "",
) -> Response:  # fmt: skip
    try:
        with ctx.db.session() as session:
            users.add_user(email, password, role, session=session)
    except ValidationError as exc:
        return _page(request, ctx, status_code=422, error=exc.message, email=email, role=role)
    return RedirectResponse("/admin/settings?done=user-added#users", status_code=303)


@router.post("/users/{user_id:int}/delete")
def remove_user(request: Request, ctx: Ctx, identity: Admin, user_id: int) -> Response:
    """Remove an account (signed out everywhere at once); never yourself, never the last admin."""
    try:
        if user_id == identity.user_id:
            raise StateError("you cannot remove your own account while signed in with it")
        with ctx.db.session() as session:
            row = session.get(User, user_id)
            if row is None:
                raise ValidationError(f"no user #{user_id}")
            users.remove_user(row.email, session=session, keep_an_admin=True)
    except (StateError, ValidationError) as exc:
        return _page(request, ctx, status_code=409, error=str(exc))
    return RedirectResponse("/admin/settings?done=user-removed#users", status_code=303)
