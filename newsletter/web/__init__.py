"""The public web app: sign-up, confirmation, preference centre, one-click unsubscribe.

``create_app`` wires settings, database and messenger into a FastAPI app and
includes the routers listed in ``ROUTERS``; a new area (webhooks, archive,
admin) is one more router in that list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from newsletter import admin, transports
from newsletter.config import DEFAULT_SECRET, Settings
from newsletter.db import Database
from newsletter.errors import ConfigError
from newsletter.models.base import utcnow
from newsletter.subscribers.tokens import tokens_for
from newsletter.tracking import webhooks
from newsletter.transports import Messenger
from newsletter.web import api, archive, errors, public
from newsletter.web.bodylimit import BodyLimit
from newsletter.web.context import WebContext
from newsletter.web.limits import RateLimits, SlidingWindowLimiter
from newsletter.web.security import SecurityHeaders
from newsletter.web.templating import STATIC_DIR, build_templates

ROUTERS: list[APIRouter] = [public.router, api.router, archive.router, webhooks.router]


def require_secret(settings: Settings) -> None:
    """Refuse the shipped secret outside debug: anyone could forge unsubscribe links."""
    if settings.secret_key.get_secret_value() == DEFAULT_SECRET and not settings.debug:
        raise ConfigError(
            "refusing to serve with the default secret_key; set NEWSLETTER_SECRET_KEY "
            "(or debug = true for local development)"
        )


def create_app(
    settings: Settings,
    db: Database,
    *,
    messenger: Messenger | None = None,
    limits: RateLimits | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The app; ``messenger`` defaults to the configured transport (closed on shutdown)."""
    require_secret(settings)
    owned = messenger is None
    chosen = messenger or transports.build_messenger(settings)
    limits = limits or RateLimits()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            chosen.close()

    app = FastAPI(
        title=f"{settings.organisation} newsletter",
        version="1",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = WebContext(
        settings=settings, db=db, messenger=chosen, tokens=tokens_for(settings), clock=clock,
        ip_limiter=SlidingWindowLimiter(limits.per_ip, limits.window_seconds),
    )  # fmt: skip
    app.state.templates = build_templates(settings)
    app.add_middleware(
        BodyLimit, default=settings.request_max_bytes, uploads=settings.import_max_bytes,
        upload_paths=admin.UPLOAD_PATHS,
    )  # fmt: skip
    app.add_middleware(SecurityHeaders, https=settings.base_url.startswith("https://"))
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in [*ROUTERS, *admin.routers()]:
        app.include_router(router)
    return app
