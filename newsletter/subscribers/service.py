"""The subscriber service: sign-up with double opt-in, consent trail, unsubscribe, erasure.

Every function takes ``session=`` (keyword-only) and never commits: the caller
owns the transaction, so a web request or a CSV import is all-or-nothing.
Each change of consent appends a ``ConsentEvent`` saying who, when, from where
and with which words.

Sign-up never reveals whether an address is already known: ``subscribe``
returns a ``Notice`` for the caller to act on (send the confirmation, send an
"already subscribed" note, or send nothing), and the caller answers the
requester identically in every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, delete, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import emit, events
from newsletter.db import lock_audience
from newsletter.errors import StateError, TokenError
from newsletter.models.base import utcnow
from newsletter.models.sending import Delivery
from newsletter.models.subscribers import (
    ConsentEvent,
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    SuppressionReason,
)
from newsletter.subscribers import store
from newsletter.subscribers import suppression as suppression_list
from newsletter.subscribers.addresses import hash_normalised, normalise_email
from newsletter.subscribers.csvio import ImportReport, export_csv, import_csv
from newsletter.subscribers.store import Actor, clean_name, clean_topics
from newsletter.subscribers.tokens import Purpose, Tokens

__all__ = [
    "CONSENT_TEXT",
    "Actor",
    "ImportReport",
    "Notice",
    "SignupOutcome",
    "SignupRequest",
    "add",
    "audience_query",
    "claim_confirmation_slot",
    "confirm",
    "erase",
    "export_csv",
    "from_token",
    "gdpr_export",
    "import_csv",
    "list_subscribers",
    "subscribe",
    "subscriber_as_dict",
    "suppress",
    "unsubscribe",
    "unsubscribe_email",
    "update_preferences",
]

# Shown next to the sign-up button and stored verbatim on every sign-up's consent event.
CONSENT_TEXT = (
    "Subscribe to receive email updates including expert insights, success stories and resources."
)
CONFIRM_INTERVAL = timedelta(hours=1)  # at most one confirmation email per address per hour
# Suppressions the person may lift by confirming a new sign-up themselves: they
# chose them.  Bounces, complaints and an admin's decision need an admin.
SELF_LIFTABLE = frozenset({SuppressionReason.UNSUBSCRIBED, SuppressionReason.ERASED})
BLOCKED_STATUSES = frozenset({SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED})


class Notice(StrEnum):
    """What email, if any, a sign-up request may trigger."""

    CONFIRM = "confirm"  # the double opt-in email
    ALREADY = "already"  # "you are already subscribed" with a preferences link
    NONE = "none"  # nothing (rate-limited, bounced, complained, suppressed by an admin)


@dataclass(frozen=True, slots=True)
class SignupRequest:
    email: str
    actor: Actor
    name: str | None = None
    topics: Sequence[str] = ()
    consent_text: str = CONSENT_TEXT
    time_zone: str | None = None  # a valid IANA name or None (local-time sending)


@dataclass(frozen=True, slots=True)
class SignupOutcome:
    """The decision; ``reason`` is for logs and tests, never for the requester."""

    subscriber: Subscriber | None
    notice: Notice
    reason: str = field(default="")


# ---------------------------------------------------------------- sign-up


def subscribe(
    request: SignupRequest,
    *,
    session: Session,
    allowed_topics: Sequence[str],
    now: datetime | None = None,
) -> SignupOutcome:
    """Record a sign-up as pending and decide which email (if any) may be sent.

    Invalid input raises ``ValidationError`` before anything is looked up, so
    errors depend only on what was typed, never on who is already subscribed.
    """
    email = normalise_email(request.email)
    name = clean_name(request.name)
    topics = clean_topics(request.topics, allowed_topics)
    now = now or utcnow()
    email_hash = hash_normalised(email)
    held = suppression_list.suppression_for(email_hash, session=session)
    if held is not None and held.reason not in SELF_LIFTABLE:
        return SignupOutcome(None, Notice.NONE, f"suppressed ({held.reason})")
    subscriber = _find_or_create(email, email_hash, session=session, now=now)
    if subscriber.status in BLOCKED_STATUSES:
        return SignupOutcome(subscriber, Notice.NONE, subscriber.status)
    if subscriber.status == SubscriberStatus.CONFIRMED and held is None:
        notice = Notice.ALREADY
    else:
        _make_pending(subscriber, name, topics)
        subscriber.time_zone = request.time_zone or subscriber.time_zone
        store.record(
            session, ConsentKind.SUBSCRIBE, actor=request.actor, email_hash=email_hash,
            subscriber=subscriber, consent_text=request.consent_text,
            detail={"topics": topics}, now=now,
        )  # fmt: skip
        notice = Notice.CONFIRM
    if not claim_confirmation_slot(subscriber, session=session, now=now):
        return SignupOutcome(subscriber, Notice.NONE, "an email went to this address recently")
    return SignupOutcome(subscriber, notice)


def _find_or_create(email: str, email_hash: str, *, session: Session, now: datetime) -> Subscriber:
    """The subscriber for an address, inserted if new; safe when two requests race.

    INSERT ... ON CONFLICT DO NOTHING (no savepoint: pysqlite's savepoints can
    commit the outer transaction) then SELECT: whichever request loses the race
    simply finds the winner's row.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {
        "email": email,
        "email_hash": email_hash,
        "status": SubscriberStatus.PENDING.value,
        "created_at": now,
        "soft_bounces": 0,
    }
    session.execute(insert(Subscriber).values(**values).on_conflict_do_nothing())
    row = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
    return row


def _make_pending(subscriber: Subscriber, name: str | None, topics: list[str]) -> None:
    """(Re-)open a sign-up: the latest request's name and topics, awaiting confirmation."""
    subscriber.status = SubscriberStatus.PENDING.value
    subscriber.name = name or subscriber.name
    subscriber.set_topics(topics)


def claim_confirmation_slot(subscriber: Subscriber, *, session: Session, now: datetime) -> bool:
    """Atomically take this hour's one confirmation email for the address.

    A conditional UPDATE, so the limit holds across processes and workers: of
    two concurrent requests only one sees its row updated.
    """
    statement = (
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            or_(
                Subscriber.last_confirmation_sent_at.is_(None),
                Subscriber.last_confirmation_sent_at <= now - CONFIRM_INTERVAL,
            ),
        )
        .values(last_confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    claimed = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
    session.expire(subscriber, ["last_confirmation_sent_at"])
    return bool(claimed)


def confirm(
    subscriber: Subscriber, *, session: Session, actor: Actor, now: datetime | None = None
) -> bool:
    """Complete the double opt-in; ``False`` if it was already confirmed (idempotent)."""
    if subscriber.status == SubscriberStatus.CONFIRMED:
        return False
    if subscriber.status != SubscriberStatus.PENDING:
        raise StateError(f"this subscription can no longer be confirmed ({subscriber.status})")
    held = suppression_list.suppression_for(subscriber.email_hash, session=session)
    if held is not None and held.reason not in SELF_LIFTABLE:
        raise StateError("this address cannot be subscribed; please contact us")
    if held is not None:
        suppression_list.lift(subscriber.email_hash, session=session)
    now = now or utcnow()
    subscriber.status = SubscriberStatus.CONFIRMED.value
    subscriber.confirmed_at = now
    subscriber.unsubscribed_at = None
    store.record(
        session, ConsentKind.CONFIRM, actor=actor, email_hash=subscriber.email_hash,
        subscriber=subscriber, consent_text=_last_consent_text(subscriber, session=session),
        detail={"topics": subscriber.topics}, now=now,
    )  # fmt: skip
    emit(
        session,
        events.SUBSCRIBER_CONFIRMED,
        lambda: events.subscriber_confirmed(subscriber, actor.source),
        now=now,
    )
    return True


def _last_consent_text(subscriber: Subscriber, *, session: Session) -> str | None:
    """The words the person agreed to when they signed up (copied onto the confirmation)."""
    query = (
        select(ConsentEvent.consent_text)
        .where(
            ConsentEvent.subscriber_id == subscriber.id,
            ConsentEvent.kind == ConsentKind.SUBSCRIBE.value,
        )
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def from_token(tokens: Tokens, purpose: Purpose, token: str, *, session: Session) -> Subscriber:
    """The subscriber a link speaks for; ``TokenError`` if forged, expired, foreign or erased."""
    claims = tokens.load(purpose, token)
    subscriber = session.get(Subscriber, claims.subscriber_id)
    if subscriber is None or not tokens.matches(claims, subscriber):
        raise TokenError("this link is not valid")
    return subscriber


# ---------------------------------------------------------------- changes


def update_preferences(
    subscriber: Subscriber,
    *,
    session: Session,
    actor: Actor,
    allowed_topics: Sequence[str],
    topics: Sequence[str],
    paused_until: datetime | None,
    now: datetime | None = None,
    tracking: bool | None = None,
) -> None:
    """Change topics, pause and tracking (token-authenticated: the person themselves).

    ``tracking`` None keeps the reader's choice; False sends them untracked
    links and no open pixel from the next batch on, and drops hits from mail
    they already have (``newsletter.tracking.engagement``).
    """
    chosen = clean_topics(topics, allowed_topics)
    now = now or utcnow()
    if paused_until is not None and paused_until <= now:
        paused_until = None
    subscriber.set_topics(chosen)
    subscriber.paused_until = paused_until
    if tracking is not None:
        subscriber.tracking = tracking
    detail = {
        "topics": chosen,
        "paused_until": paused_until.isoformat() if paused_until else None,
        "tracking": subscriber.tracking,
    }
    store.record(
        session, ConsentKind.PREFERENCES, actor=actor, email_hash=subscriber.email_hash,
        subscriber=subscriber, detail=detail, now=now,
    )  # fmt: skip


def unsubscribe(
    subscriber: Subscriber, *, session: Session, actor: Actor, now: datetime | None = None
) -> bool:
    """Withdraw consent and suppress the address; ``False`` if already done (idempotent)."""
    active = subscriber.status in (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED)
    listed = suppression_list.hash_is_suppressed(subscriber.email_hash, session=session)
    if not active and listed:
        return False
    now = now or utcnow()
    suppression_list.suppress_hash(
        subscriber.email_hash, SuppressionReason.UNSUBSCRIBED, session=session, now=now
    )
    session.refresh(subscriber)
    store.record(
        session, ConsentKind.WITHDRAW, actor=actor, email_hash=subscriber.email_hash,
        subscriber=subscriber, now=now,
    )  # fmt: skip
    emit(
        session,
        events.SUBSCRIBER_UNSUBSCRIBED,
        lambda: events.subscriber_unsubscribed(subscriber, actor.source, now),
        now=now,
    )
    return True


def unsubscribe_email(email: str, *, session: Session, actor: Actor) -> bool:
    """``unsubscribe`` by address; an unknown address is still suppressed."""
    subscriber = store.find(email, session=session)
    if subscriber is not None:
        return unsubscribe(subscriber, session=session, actor=actor)
    return suppress(email, SuppressionReason.UNSUBSCRIBED, session=session, actor=actor)


def suppress(
    email: str, reason: str, *, session: Session, actor: Actor, note: str | None = None
) -> bool:
    """Suppress an address by hand (CLI/admin), recording who did it; ``False`` if already."""
    email_hash = hash_normalised(normalise_email(email))
    if suppression_list.hash_is_suppressed(email_hash, session=session):
        suppression_list.suppress_hash(email_hash, reason, session=session, note=note)
        return False
    suppression_list.suppress_hash(email_hash, reason, session=session, note=note)
    subscriber = store.find(email, session=session)
    store.record(
        session, ConsentKind.ADMIN, actor=actor, email_hash=email_hash, subscriber=subscriber,
        detail={"suppressed": reason, "note": note},
    )  # fmt: skip
    return True


def add(
    email: str,
    *,
    session: Session,
    actor: Actor,
    allowed_topics: Sequence[str],
    name: str | None = None,
    topics: Sequence[str] = (),
    confirmed: bool = False,
    consent_text: str | None = None,
    time_zone: str | None = None,
) -> Subscriber:
    """Add one subscriber by hand; refuses suppressed and existing addresses."""
    from newsletter.sending.localtime import check_zone

    zone_name = check_zone(time_zone, where="--time-zone") if time_zone else None
    address = normalise_email(email)
    clean = clean_name(name)
    chosen = clean_topics(topics, allowed_topics)
    email_hash = hash_normalised(address)
    held = suppression_list.suppression_for(email_hash, session=session)
    if held is not None:
        raise StateError(f"{address} is suppressed ({held.reason}); it cannot be added")
    if store.find(address, session=session) is not None:
        raise StateError(f"{address} is already a subscriber")
    now = utcnow()
    status = SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING
    row = Subscriber(
        email=address, email_hash=email_hash, name=clean, status=status.value, created_at=now,
        confirmed_at=now if confirmed else None, soft_bounces=0, time_zone=zone_name,
    )  # fmt: skip
    row.set_topics(chosen)
    session.add(row)
    session.flush()
    # an admin's choice, not the reader's joining a topic: it starts no topic sequence
    session.execute(
        update(SubscriberTopic)
        .where(SubscriberTopic.subscriber_id == row.id)
        .values(created_at=None)
        .execution_options(synchronize_session=False)
    )
    store.record(
        session, ConsentKind.ADMIN, actor=actor, email_hash=email_hash, subscriber=row,
        consent_text=consent_text, detail={"status": status.value, "topics": chosen}, now=now,
    )  # fmt: skip
    return row


# ---------------------------------------------------------------- erasure and export


def erase(email: str, *, session: Session, actor: Actor) -> bool:
    """Forget a person: delete their row, anonymise their consent trail, keep the hash.

    The hash stays on the suppression list (reason ``erased`` unless it was
    already suppressed) so no later import re-adds them.  Earlier consent
    events keep kind, time, source and wording (counts of sign-ups per form
    stay true) but lose everything that points at the person: subscriber id,
    address hash, IP, user agent and details.  One ``erase`` event records the
    erasure against the hash, as the suppression row does.  Returns whether a
    subscriber row existed.
    """
    address = normalise_email(email)
    email_hash = hash_normalised(address)
    subscriber = store.find(address, session=session)
    suppression_list.suppress_hash(email_hash, SuppressionReason.ERASED, session=session)
    condition = ConsentEvent.email_hash == email_hash
    if subscriber is not None:
        condition = or_(condition, ConsentEvent.subscriber_id == subscriber.id)
    session.execute(
        update(ConsentEvent)
        .where(condition)
        .values(subscriber_id=None, email_hash=None, ip=None, user_agent=None, detail=None)
        .execution_options(synchronize_session=False)
    )
    if subscriber is not None:
        # The ledger keeps the row and the hash but loses the link (no foreign key does it).
        lock_audience(session, exclusive=True)
        # The raw click/open log (times, user agents, network hashes) goes with the person;
        # the per-link sums stay, anonymous, with the campaign's figures.
        from newsletter.models.tracking import EngagementEvent

        mine = select(Delivery.id).where(Delivery.subscriber_id == subscriber.id)
        session.execute(
            delete(EngagementEvent)
            .where(EngagementEvent.delivery_id.in_(mine))
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == subscriber.id)
            .values(subscriber_id=None)
            .execution_options(synchronize_session=False)
        )
        session.delete(subscriber)  # topics go with it (ORM cascade and ON DELETE CASCADE)
        session.flush()
    erased_by = Actor(source=actor.source)  # no IP or user agent: nothing new about the person
    store.record(session, ConsentKind.ERASE, actor=erased_by, email_hash=email_hash)
    return subscriber is not None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def subscriber_as_dict(row: Subscriber) -> dict[str, Any]:
    """Every field of a subscriber, JSON-ready."""
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "status": row.status,
        "topics": row.topics,
        "created_at": _iso(row.created_at),
        "confirmed_at": _iso(row.confirmed_at),
        "unsubscribed_at": _iso(row.unsubscribed_at),
        "paused_until": _iso(row.paused_until),
        "last_confirmation_sent_at": _iso(row.last_confirmation_sent_at),
        "soft_bounces": row.soft_bounces,
        "tracking": row.tracking,
        "time_zone": row.time_zone,
    }


def _event_as_dict(event: ConsentEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": _iso(event.at),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "source": event.source,
        "consent_text": event.consent_text,
        "detail": event.detail,
    }


def gdpr_export(email: str, *, session: Session) -> dict[str, Any]:
    """Everything held about an address (subject access request), JSON-ready."""
    address = normalise_email(email)
    email_hash = hash_normalised(address)
    subscriber = store.find(address, session=session)
    condition = ConsentEvent.email_hash == email_hash
    if subscriber is not None:
        condition = or_(condition, ConsentEvent.subscriber_id == subscriber.id)
    events = session.scalars(select(ConsentEvent).where(condition).order_by(ConsentEvent.id))
    held = suppression_list.suppression_for(email_hash, session=session)
    from newsletter.sending.history import sends_for  # sending depends on us, not the reverse

    return {
        "email": address,
        "email_hash": email_hash,
        "exported_at": _iso(utcnow()),
        "subscriber": subscriber_as_dict(subscriber) if subscriber is not None else None,
        "consent_events": [_event_as_dict(e) for e in events],
        "suppression": None
        if held is None
        else {"reason": held.reason, "created_at": _iso(held.created_at), "note": held.note},
        "sends": sends_for(email_hash, session=session),
    }


# ---------------------------------------------------------------- queries


def list_subscribers(*, session: Session, status: str | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    return list(session.scalars(query))


def audience_query(
    topics: Sequence[str] | None, *, now: datetime | None = None
) -> Select[tuple[int]]:
    """Ids of subscribers an issue may go to: confirmed, not paused, not suppressed, on topic."""
    now = now or utcnow()
    suppressed = exists().where(Suppression.email_hash == Subscriber.email_hash)
    query = select(Subscriber.id).where(
        Subscriber.status == SubscriberStatus.CONFIRMED.value,
        or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now),
        ~suppressed,
    )
    if topics:
        on_topic = exists().where(
            SubscriberTopic.subscriber_id == Subscriber.id, SubscriberTopic.topic.in_(list(topics))
        )
        query = query.where(on_topic)
    return query.order_by(Subscriber.id)
