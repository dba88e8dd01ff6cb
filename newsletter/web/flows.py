"""The one code path behind both the HTML pages and the JSON API.

Pages and API differ only in how they read input and present the result; the
rules (honeypot, rate limits, double opt-in, token checks, idempotence) live
here once, so the API can never be a way around them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import BackgroundTasks
from sqlalchemy.orm import Session

from newsletter.errors import ValidationError
from newsletter.models.subscribers import Subscriber
from newsletter.sending.localtime import browser_zone
from newsletter.subscribers import confirmation, service
from newsletter.subscribers.addresses import normalise_email
from newsletter.subscribers.confirmation import Addressee
from newsletter.subscribers.service import CONSENT_TEXT, Notice
from newsletter.subscribers.store import Actor
from newsletter.subscribers.tokens import Purpose
from newsletter.web.context import Client, WebContext

log = logging.getLogger(__name__)
PAUSE_CHOICES = {30: "1 month", 90: "3 months", 180: "6 months"}
MAX_PAUSE_DAYS = 365


@dataclass(frozen=True, slots=True)
class SignupInput:
    """A sign-up as typed, before any validation (the same for form and API)."""

    email: str
    name: str | None = None
    topics: Sequence[str] = ()
    honeypot: str = ""
    time_zone: str = ""  # the browser's IANA zone (local-time sending); dropped if unknown


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the preference centre shows and edits."""

    email: str
    name: str | None
    status: str
    topics: list[str]
    paused_until: datetime | None
    unsubscribe_token: str
    tracking: bool = True
    all_topics: list[str] = field(default_factory=list)


def _actor(client: Client, source: str) -> Actor:
    return Actor(source=source, ip=client.ip, user_agent=client.user_agent)


def subscribe(
    ctx: WebContext, form: SignupInput, client: Client, background: BackgroundTasks, *, source: str
) -> str:
    """Handle a sign-up; returns the normalised address as typed, to echo back.

    The result is the same whether the address is new, pending, confirmed,
    suppressed or rate-limited: only the mailbox owner learns the difference,
    from the email (or its absence).  Sending happens after the response, so
    response time does not reveal whether an email went either.
    """
    ctx.ip_limiter.hit(client.ip or "unknown")
    email = normalise_email(form.email)
    request = service.SignupRequest(
        email=form.email, name=form.name, topics=form.topics, consent_text=CONSENT_TEXT,
        actor=_actor(client, source), time_zone=browser_zone(form.time_zone),
    )  # fmt: skip
    if form.honeypot:
        log.info("honeypot filled from %s; ignoring sign-up", client.ip)
        return email
    with ctx.db.session() as session:
        outcome = service.subscribe(
            request, session=session, allowed_topics=ctx.topics, now=ctx.clock()
        )
        addressee = Addressee.of(outcome.subscriber) if outcome.subscriber else None
    if addressee is not None and outcome.notice is not Notice.NONE:
        background.add_task(
            confirmation.send, ctx.settings, ctx.messenger, addressee, outcome.notice.value
        )
    return email


def _subscriber(ctx: WebContext, purpose: Purpose, token: str, session: Session) -> Subscriber:
    return service.from_token(ctx.tokens, purpose, token, session=session)


def check_confirm(ctx: WebContext, token: str) -> str:
    """Validate a confirmation link without acting on it; returns the subscriber's status."""
    with ctx.db.session() as session:
        return _subscriber(ctx, Purpose.CONFIRM, token, session).status


def confirm(ctx: WebContext, token: str, client: Client, *, source: str) -> str:
    """Confirm a sign-up (idempotent); returns a preferences token for the next page."""
    with ctx.db.session() as session:
        subscriber = _subscriber(ctx, Purpose.CONFIRM, token, session)
        service.confirm(subscriber, session=session, actor=_actor(client, source), now=ctx.clock())
        return ctx.tokens.make(Purpose.PREFERENCES, subscriber)


def check_unsubscribe(ctx: WebContext, token: str) -> str:
    """Validate an unsubscribe link without acting on it; returns the subscriber's status."""
    with ctx.db.session() as session:
        return _subscriber(ctx, Purpose.UNSUBSCRIBE, token, session).status


def unsubscribe(ctx: WebContext, token: str, client: Client, *, source: str) -> None:
    """Unsubscribe and suppress (idempotent: a second call changes nothing)."""
    with ctx.db.session() as session:
        subscriber = _subscriber(ctx, Purpose.UNSUBSCRIBE, token, session)
        service.unsubscribe(
            subscriber, session=session, actor=_actor(client, source), now=ctx.clock()
        )


def preferences(ctx: WebContext, token: str) -> Preferences:
    with ctx.db.session() as session:
        subscriber = _subscriber(ctx, Purpose.PREFERENCES, token, session)
        return _preferences(ctx, subscriber)


def _preferences(ctx: WebContext, subscriber: Subscriber) -> Preferences:
    now = ctx.clock()
    paused = (
        subscriber.paused_until
        if subscriber.paused_until and subscriber.paused_until > now
        else None
    )
    return Preferences(
        email=subscriber.email, name=subscriber.name, status=subscriber.status,
        topics=subscriber.topics, paused_until=paused,
        unsubscribe_token=ctx.tokens.make(Purpose.UNSUBSCRIBE, subscriber), all_topics=ctx.topics,
        tracking=subscriber.tracking,
    )  # fmt: skip


def update_preferences(
    ctx: WebContext,
    token: str,
    client: Client,
    *,
    topics: Sequence[str],
    pause_days: int | None,
    source: str,
    tracking: bool | None = None,
) -> Preferences:
    """Save topics, pause and tracking; ``pause_days`` None keeps the pause, 0 resumes."""
    if pause_days is not None and not 0 <= pause_days <= MAX_PAUSE_DAYS:
        raise ValidationError(f"a pause must be between 0 and {MAX_PAUSE_DAYS} days")
    with ctx.db.session() as session:
        subscriber = _subscriber(ctx, Purpose.PREFERENCES, token, session)
        now = ctx.clock()
        paused_until = subscriber.paused_until
        if pause_days is not None:
            paused_until = now + timedelta(days=pause_days) if pause_days else None
        service.update_preferences(
            subscriber, session=session, actor=_actor(client, source),
            allowed_topics=ctx.topics, topics=topics, paused_until=paused_until, now=now,
            tracking=tracking,
        )  # fmt: skip
        return _preferences(ctx, subscriber)
