"""The JSON API: the same sign-up, confirm, preferences and unsubscribe as the pages.

Every handler calls the same ``flows`` function as its page, so the honeypot,
rate limits, enumeration-safe answers and token rules are identical.  The
OpenAPI document (``/openapi.json``) describes every route, body and error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from newsletter.subscribers.service import CONSENT_TEXT
from newsletter.web import flows
from newsletter.web.context import Client, Ctx

Token = Annotated[str, Field(min_length=1, max_length=500, description="token from an email link")]
TokenPath = Annotated[
    str, Path(min_length=1, max_length=500, description="token from an email link")
]


class ErrorBody(BaseModel):
    detail: str = Field(description="one line saying what is wrong")


ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "the token is invalid, expired or not yours"},
    409: {"model": ErrorBody, "description": "not possible in the subscription's state"},
    422: {"model": ErrorBody, "description": "invalid input"},
}
router = APIRouter(prefix="/api", tags=["subscribers"], responses=ERRORS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormInfo(BaseModel):
    consent_text: str = Field(description="show this text next to the sign-up button")
    topics: list[str]


class SubscribeBody(_Body):
    email: Annotated[str, Field(max_length=1000, examples=["ann@example.org"])]
    name: Annotated[str | None, Field(max_length=1000)] = None
    topics: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)] = []
    website: Annotated[str, Field(max_length=1000, description="honeypot: leave empty")] = ""
    time_zone: Annotated[
        str,
        Field(
            max_length=64, examples=["Europe/London"],
            description="the reader's IANA zone, for local-time sends (ignored if unknown)",
        ),
    ] = ""  # fmt: skip


class Accepted(BaseModel):
    status: str = Field(description="always 'pending_confirmation'")
    email: str = Field(description="the address, normalised")
    message: str


class TokenBody(_Body):
    token: Token


class StatusBody(BaseModel):
    status: str


class PreferencesOut(BaseModel):
    email: str
    name: str | None
    status: str
    topics: list[str]
    paused_until: datetime | None
    all_topics: list[str]


class PreferencesIn(_Body):
    topics: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)]
    pause_days: Annotated[
        int | None,
        Field(ge=0, le=flows.MAX_PAUSE_DAYS, description="omit to keep, 0 to resume"),
    ] = None


ACCEPTED = (
    "If this address can receive our emails, a confirmation link is on its way. "
    "Please click it to complete your subscription."
)


@router.get("/topics")
def topics(ctx: Ctx) -> FormInfo:
    """What a sign-up form must show: the consent text and the topics to choose from."""
    return FormInfo(consent_text=CONSENT_TEXT, topics=ctx.topics)


@router.post(
    "/subscribe",
    status_code=status.HTTP_202_ACCEPTED,
    responses={429: {"model": ErrorBody, "description": "too many requests"}},
)
def subscribe(
    body: SubscribeBody, request: Request, ctx: Ctx, background: BackgroundTasks
) -> Accepted:
    """Start a double opt-in sign-up; the answer never says whether the address is known."""
    form = flows.SignupInput(
        email=body.email, name=body.name, topics=body.topics, honeypot=body.website,
        time_zone=body.time_zone,
    )  # fmt: skip
    email = flows.subscribe(ctx, form, Client.of(request), background, source="api:subscribe")
    return Accepted(status="pending_confirmation", email=email, message=ACCEPTED)


@router.post("/confirm")
def confirm(body: TokenBody, request: Request, ctx: Ctx) -> StatusBody:
    """Confirm a sign-up (idempotent)."""
    flows.confirm(ctx, body.token, Client.of(request), source="api:confirm")
    return StatusBody(status="confirmed")


def _out(prefs: flows.Preferences) -> PreferencesOut:
    return PreferencesOut(
        email=prefs.email, name=prefs.name, status=prefs.status, topics=prefs.topics,
        paused_until=prefs.paused_until, all_topics=prefs.all_topics,
    )  # fmt: skip


@router.get("/preferences/{token}")
def get_preferences(token: TokenPath, ctx: Ctx) -> PreferencesOut:
    """The subscriber's topics, pause and status."""
    return _out(flows.preferences(ctx, token))


@router.put("/preferences/{token}")
def put_preferences(
    token: TokenPath, body: PreferencesIn, request: Request, ctx: Ctx
) -> PreferencesOut:
    """Replace the topics; set, keep or end a pause."""
    prefs = flows.update_preferences(
        ctx, token, Client.of(request), topics=body.topics, pause_days=body.pause_days,
        source="api:preferences",
    )  # fmt: skip
    return _out(prefs)


@router.post("/unsubscribe")
def unsubscribe(body: TokenBody, request: Request, ctx: Ctx) -> StatusBody:
    """Unsubscribe and suppress the address (idempotent)."""
    flows.unsubscribe(ctx, body.token, Client.of(request), source="api:unsubscribe")
    return StatusBody(status="unsubscribed")
