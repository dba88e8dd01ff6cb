"""The token API under ``/api/v1``: subscribers, campaigns and resources for other programs.

Every route is declared through ``route(..., scope=...)``, which attaches the
``Scope`` check as a dependency: the bearer token is looked up on every
request (a revoked or expired one is refused at once: 401), must carry the
route's scope (403), and is rate-limited per token (429).  The handlers call
the same service functions as the CLI and the admin.  Errors are one line of
JSON, ``{"detail": "..."}``; the OpenAPI document shows the bearer scheme and
each route's scope (``x-required-scope``).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.automation import tokens
from newsletter.config import classify_topics
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.models import Campaign, Subscriber
from newsletter.models.automation import ApiToken
from newsletter.render.markup import url_problem
from newsletter.resources import library
from newsletter.resources.records import ResourceRecord
from newsletter.sending import campaigns as campaign_service
from newsletter.sending import service as sending
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.store import Actor, clean_name
from newsletter.web.api import ErrorBody
from newsletter.web.context import Ctx, WebContext
from newsletter.web.limits import SlidingWindowLimiter

PREFIX = "/api/v1"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or an unknown, expired or revoked one"},
    403: {"model": ErrorBody, "description": "the token lacks this route's scope"},
    404: {"model": ErrorBody, "description": "no such object"},
    409: {"model": ErrorBody, "description": "not possible in the object's state"},
    422: {"model": ErrorBody, "description": "invalid input"},
    429: {"model": ErrorBody, "description": "too many requests with this token"},
}
router = APIRouter(prefix=PREFIX, responses=ERRORS)
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="An API token (nlt_...) from `newsletter tokens create` or Settings > API tokens.",
)
F = TypeVar("F", bound=Callable[..., Any])
_limiter_lock = threading.Lock()


def _limiter(request: Request, ctx: WebContext) -> SlidingWindowLimiter:
    """The app's per-token limiter, built on first use (no module-level state)."""
    found = getattr(request.app.state, "api_limiter", None)
    if found is None:
        with _limiter_lock:
            found = getattr(request.app.state, "api_limiter", None)
            if found is None:
                found = SlidingWindowLimiter(ctx.settings.api_rate_limit_per_minute, 60.0)
                request.app.state.api_limiter = found
    assert isinstance(found, SlidingWindowLimiter)
    return found


class Scope:
    """The dependency every route carries: a live token with this scope, within its rate."""

    def __init__(self, scope: str) -> None:
        assert scope in tokens.SCOPES, scope
        self.scope = scope

    def __call__(
        self,
        request: Request,
        ctx: Ctx,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiToken:
        given = credentials.credentials if credentials is not None else None
        with ctx.db.session() as session:
            row = tokens.authenticate(session, given, now=ctx.clock())
            session.expunge(row)
        _limiter(request, ctx).hit(f"token:{row.id}")
        tokens.require(row, self.scope)
        request.state.api_token = row
        return row


def route(method: str, path: str, *, scope: str, **options: Any) -> Callable[[F], F]:
    """``router.api_route`` with the scope check attached and shown in the OpenAPI document."""

    def decorate(handler: F) -> F:
        extra = {"x-required-scope": scope}
        doc = inspect.getdoc(handler) or ""
        description = f"Needs an API token with the `{scope}` scope.\n\n{doc}".strip()
        registered: F = router.api_route(
            path, methods=[method], dependencies=[Depends(Scope(scope))], openapi_extra=extra,
            description=description, **options,
        )(handler)  # fmt: skip
        return registered

    return decorate


def _actor(request: Request) -> Actor:
    row: ApiToken = request.state.api_token
    return Actor(source=f"api-token:{row.id}:{row.name}"[:300])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = Annotated[str, Field(max_length=1000)]
TopicList = Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)]
Limit = Annotated[int, Query(ge=1, le=500, description="at most this many")]
After = Annotated[int, Query(ge=0, le=2**31 - 1, description="the last id of the previous page")]
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


# --- subscribers -----------------------------------------------------------------------------


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str | None
    status: str
    topics: list[str]
    created_at: datetime | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    paused_until: datetime | None


class SubscriberPage(BaseModel):
    data: list[SubscriberOut]
    next_after: int | None = Field(description="pass as ?after= for the next page; null: done")


class NewSubscriber(_Body):
    email: Annotated[str, Field(max_length=320, examples=["ann@example.org"])]
    name: Annotated[str | None, Field(max_length=200)] = None
    topics: TopicList = []
    confirmed: bool = Field(False, description="true: consent was given elsewhere (say how)")
    consent_text: Annotated[
        str | None, Field(max_length=2000, description="what they agreed to (if confirmed)")
    ] = None


class SubscriberChanges(_Body):
    name: Annotated[str | None, Field(max_length=200)] = None
    topics: TopicList | None = None
    pause_days: Annotated[int | None, Field(ge=0, le=365, description="0 resumes")] = None


def _subscriber_out(row: Subscriber) -> SubscriberOut:
    return SubscriberOut(
        id=row.id, email=row.email, name=row.name, status=row.status, topics=row.topics,
        created_at=row.created_at, confirmed_at=row.confirmed_at,
        unsubscribed_at=row.unsubscribed_at, paused_until=row.paused_until,
    )  # fmt: skip


def _subscriber(session: Session, subscriber_id: int) -> Subscriber:
    row = session.get(Subscriber, subscriber_id)
    if row is None:
        raise NotFoundError(f"no subscriber #{subscriber_id}")
    assert isinstance(row, Subscriber)
    return row


@route("GET", "/subscribers", scope="subscribers:read", tags=["subscribers"])
def list_subscribers(
    ctx: Ctx,
    status_: Annotated[str | None, Query(alias="status", max_length=20)] = None,
    after: After = 0,
    limit: Limit = 100,
) -> SubscriberPage:
    """Subscribers by id, a page at a time."""
    with ctx.db.session() as session:
        query = select(Subscriber).where(Subscriber.id > after).order_by(Subscriber.id)
        if status_:
            query = query.where(Subscriber.status == status_)
        rows = list(session.scalars(query.limit(limit + 1)))
        more = len(rows) > limit
        shown = [_subscriber_out(r) for r in rows[:limit]]
    return SubscriberPage(data=shown, next_after=shown[-1].id if more and shown else None)


@route("GET", "/subscribers/{subscriber_id}", scope="subscribers:read", tags=["subscribers"])
def get_subscriber(ctx: Ctx, subscriber_id: IdPath) -> SubscriberOut:
    with ctx.db.session() as session:
        return _subscriber_out(_subscriber(session, subscriber_id))


@route(
    "POST", "/subscribers", scope="subscribers:write", tags=["subscribers"],
    status_code=status.HTTP_201_CREATED,
)  # fmt: skip
def create_subscriber(body: NewSubscriber, request: Request, ctx: Ctx) -> SubscriberOut:
    """Add a subscriber: confirmed (consent given elsewhere, its words required) or pending.

    For a double opt-in sign-up from your own form, use ``POST /api/subscribe``.
    """
    if body.confirmed and not (body.consent_text or "").strip():
        raise ValidationError("consent_text: required when adding a confirmed subscriber")
    with ctx.db.session() as session:
        row = subscribers.add(
            body.email, session=session, actor=_actor(request), allowed_topics=ctx.topics,
            name=body.name, topics=body.topics, confirmed=body.confirmed,
            consent_text=body.consent_text,
        )  # fmt: skip
        return _subscriber_out(row)


@route("PATCH", "/subscribers/{subscriber_id}", scope="subscribers:write", tags=["subscribers"])
def update_subscriber(
    subscriber_id: IdPath, body: SubscriberChanges, request: Request, ctx: Ctx
) -> SubscriberOut:
    """Change the name, the topics or the pause (fields left out stay as they are)."""
    now = ctx.clock()
    with ctx.db.session() as session:
        row = _subscriber(session, subscriber_id)
        if body.name is not None:
            row.name = clean_name(body.name)
        if body.topics is not None or body.pause_days is not None:
            paused = row.paused_until
            if body.pause_days is not None:
                paused = now + timedelta(days=body.pause_days) if body.pause_days else None
            subscribers.update_preferences(
                row, session=session, actor=_actor(request), allowed_topics=ctx.topics,
                topics=row.topics if body.topics is None else body.topics, paused_until=paused,
                now=now,
            )  # fmt: skip
        session.flush()
        return _subscriber_out(row)


@route(
    "POST", "/subscribers/{subscriber_id}/unsubscribe", scope="subscribers:write",
    tags=["subscribers"],
)  # fmt: skip
def unsubscribe_subscriber(subscriber_id: IdPath, request: Request, ctx: Ctx) -> SubscriberOut:
    """Unsubscribe and suppress the address (idempotent)."""
    with ctx.db.session() as session:
        row = _subscriber(session, subscriber_id)
        subscribers.unsubscribe(row, session=session, actor=_actor(request), now=ctx.clock())
        return _subscriber_out(row)


# --- campaigns -------------------------------------------------------------------------------


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    status_reason: str | None
    issue_id: int
    topics: list[str]
    audience: str
    total_recipients: int
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime | None


class CampaignPage(BaseModel):
    data: list[CampaignOut]
    next_after: int | None


class NewCampaign(_Body):
    issue: Annotated[int, Field(ge=1, le=2**31 - 1, description="the issue's number")]
    name: Annotated[str | None, Field(max_length=300)] = None
    topics: TopicList = []
    scheduled_at: datetime | None = Field(None, description="a future time (UTC if no offset)")


class Started(BaseModel):
    started: bool = Field(description="false: it had already started")
    campaign: CampaignOut


def _campaign_out(row: Campaign) -> CampaignOut:
    return CampaignOut(
        id=row.id, name=row.name, status=row.status, status_reason=row.status_reason,
        issue_id=row.issue_id, topics=list(row.topics or []), audience=row.audience,
        total_recipients=row.total_recipients, scheduled_at=row.scheduled_at,
        started_at=row.started_at, finished_at=row.finished_at, created_at=row.created_at,
    )  # fmt: skip


@route("GET", "/campaigns", scope="campaigns:read", tags=["campaigns"])
def list_campaigns(ctx: Ctx, after: After = 0, limit: Limit = 100) -> CampaignPage:
    with ctx.db.session() as session:
        query = (
            select(Campaign)
            .where(Campaign.id > after, Campaign.sequence_id.is_(None))  # not sequence steps
            .order_by(Campaign.id)
        )
        rows = list(session.scalars(query.limit(limit + 1)))
        shown = [_campaign_out(r) for r in rows[:limit]]
    return CampaignPage(data=shown, next_after=shown[-1].id if len(rows) > limit else None)


@route("GET", "/campaigns/{campaign_id}", scope="campaigns:read", tags=["campaigns"])
def get_campaign(ctx: Ctx, campaign_id: IdPath) -> CampaignOut:
    with ctx.db.session() as session:
        return _campaign_out(campaign_service.get_campaign(campaign_id, session=session))


@route("GET", "/campaigns/{campaign_id}/report", scope="campaigns:read", tags=["campaigns"])
def campaign_report(ctx: Ctx, campaign_id: IdPath) -> dict[str, Any]:
    """Counts by state, rates, engagement (people apart from machines), relays and batches."""
    with ctx.db.session() as session:
        report = campaign_service.campaign_report(
            campaign_id, session=session, with_recipients=False
        )
        return report.as_dict()


@route(
    "POST", "/campaigns", scope="campaigns:send", tags=["campaigns"],
    status_code=status.HTTP_201_CREATED,
)  # fmt: skip
def create_campaign(body: NewCampaign, ctx: Ctx) -> CampaignOut:
    """A draft campaign for an issue (or a scheduled one, with ``scheduled_at``)."""
    when = body.scheduled_at
    if when is not None:
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when <= ctx.clock():
            raise ValidationError("scheduled_at: must be in the future")
    with ctx.db.session() as session:
        campaign_service.check_topics(body.topics, ctx.topics)
        row = campaign_service.create_campaign(
            body.issue, session=session, topics=body.topics, name=body.name, scheduled_at=when
        )
        return _campaign_out(row)


@route("POST", "/campaigns/{campaign_id}/start", scope="campaigns:send", tags=["campaigns"])
def start_campaign(ctx: Ctx, campaign_id: IdPath) -> Started:
    """Preflight, freeze the audience and set it sending (idempotent); workers send it."""
    with ctx.db.session() as session:
        campaign_service.get_campaign(campaign_id, session=session)  # 404 before any work
    started = sending.start(ctx.db, ctx.settings, campaign_id, now=ctx.clock())
    with ctx.db.session() as session:
        row = campaign_service.get_campaign(campaign_id, session=session)
        if not started and row.status not in ("sending", "sent", "paused"):
            raise StateError(f"campaign #{campaign_id} cannot start: it is {row.status}")
        return Started(started=started, campaign=_campaign_out(row))


# --- resources -------------------------------------------------------------------------------


class ResourceIn(_Body):
    title: Annotated[str, Field(min_length=1, max_length=500)]
    url: Annotated[str | None, Field(max_length=2000)] = None
    summary: Annotated[str, Field(max_length=20_000)] = ""
    type: Annotated[str | None, Field(max_length=50)] = None
    source: Annotated[str | None, Field(max_length=300)] = None
    topics: TopicList = []
    authors: Annotated[str | None, Field(max_length=500)] = None
    image_url: Annotated[str | None, Field(max_length=2000)] = None
    image_alt: Annotated[str | None, Field(max_length=500)] = None
    call_to_action: Annotated[str | None, Field(max_length=300)] = None


class ResourceChanges(_Body):
    title: Annotated[str | None, Field(min_length=1, max_length=500)] = None
    url: Annotated[str | None, Field(max_length=2000)] = None
    summary: Annotated[str | None, Field(max_length=20_000)] = None
    type: Annotated[str | None, Field(max_length=50)] = None
    source: Annotated[str | None, Field(max_length=300)] = None
    topics: TopicList | None = None
    authors: Annotated[str | None, Field(max_length=500)] = None
    image_url: Annotated[str | None, Field(max_length=2000)] = None
    image_alt: Annotated[str | None, Field(max_length=500)] = None
    call_to_action: Annotated[str | None, Field(max_length=300)] = None


def _check_urls(values: dict[str, Any]) -> None:
    for name, kind in (("url", "link"), ("image_url", "image")):
        problem = url_problem(values[name], kind=kind) if values.get(name) else None
        if problem:
            raise ValidationError(f"{name}: {problem}")


@route(
    "POST", "/resources", scope="resources:write", tags=["resources"],
    status_code=status.HTTP_201_CREATED,
)  # fmt: skip
def create_resource(body: ResourceIn, ctx: Ctx) -> dict[str, Any]:
    """Add a resource to the library (refused if its URL is already there)."""
    values = body.model_dump()
    _check_urls(values)
    record = ResourceRecord(**{**values, "topics": tuple(body.topics)}, origin="api")
    with ctx.db.session() as session:
        row = library.add_resource(record, session=session, topics=classify_topics(ctx.settings))
        return library.resource_as_dict(row)


@route("PATCH", "/resources/{resource_id}", scope="resources:write", tags=["resources"])
def update_resource(resource_id: IdPath, body: ResourceChanges, ctx: Ctx) -> dict[str, Any]:
    """Change the fields given; a type or topics set here are kept by later imports."""
    changes = body.model_dump(exclude_unset=True)
    _check_urls(changes)
    with ctx.db.session() as session:
        row = library.get_resource(resource_id, session=session)
        library.edit_resource(row, changes, session=session)
        return library.resource_as_dict(row)
