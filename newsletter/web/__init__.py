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
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models.base import utcnow
from newsletter.subscribers.tokens import tokens_for
from newsletter.tracking import webhooks
from newsletter.tracking.recorder import Drainer, Recorder
from newsletter.transports import Messenger
from newsletter.web import api, api_v1, archive, errors, media, public, redirects
from newsletter.web.bodylimit import BodyLimit
from newsletter.web.context import WebContext
from newsletter.web.limits import RateLimits, SlidingWindowLimiter
from newsletter.web.security import SecurityHeaders
from newsletter.web.templating import STATIC_DIR, build_templates

ROUTERS: list[APIRouter] = [
    public.router, api.router, api_v1.router, archive.router, webhooks.router, media.router,
]  # fmt: skip


def require_secret(settings: Settings) -> None:
    """Resolve the signing keys before serving: the placeholder key is refused outside debug."""
    settings.keyring  # noqa: B018 - resolving is the check (and creates the key file)


def create_app(
    settings: Settings,
    db: Database,
    *,
    messenger: Messenger | None = None,
    limits: RateLimits | None = None,
    clock: Callable[[], datetime] = utcnow,
    sends_in_process: bool = False,
    drains_spool: bool = True,
) -> FastAPI:
    """The app; ``messenger`` defaults to the configured transport (closed on shutdown)."""
    require_secret(settings)
    owned = messenger is None
    chosen = messenger or transports.build_messenger(settings)
    limits = limits or RateLimits()

    recorder = Recorder.build(settings, db)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # One drainer per run of the app (tests run one app many times); it stores what a
        # killed predecessor spooled, then every second.  With several web processes the
        # supervising ``serve`` stores for all of them (``drains_spool=False``) and this
        # one only seals its file every second (and on the way out) for it.
        drainer = Drainer(recorder, stores=drains_spool)
        drainer.start()
        yield
        drainer.close()
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
        sends_in_process=sends_in_process,
    )  # fmt: skip
    app.state.templates = build_templates(settings)
    app.state.recorder = recorder
    app.router.routes.extend(redirects.ROUTES)
    app.add_middleware(
        BodyLimit, default=settings.request_max_bytes, uploads=settings.import_max_bytes,
        upload_paths=admin.UPLOAD_PATHS,
        path_limits={admin.IMAGE_UPLOAD_PATH: (settings.image_max_bytes + 64 * 1024, "image")},
    )  # fmt: skip
    app.add_middleware(SecurityHeaders, https=settings.base_url.startswith("https://"))
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in [*ROUTERS, *admin.routers()]:
        app.include_router(router)
    return app
