"""The suppression list: address hashes nothing is ever sent to and no import re-adds.

Keyed by hash so it survives erasure.  ``suppress`` is idempotent and safe
against a concurrent writer (INSERT ... ON CONFLICT DO NOTHING on both
backends), because webhooks, the web app and the CLI may suppress the same
address at the same moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import emit, events
from newsletter.errors import ValidationError
from newsletter.models.base import utcnow
from newsletter.models.subscribers import (
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from newsletter.subscribers.addresses import address_hash

# What a suppression does to the subscriber row (manual and erased leave the status alone).
STATUS_FOR_REASON = {
    SuppressionReason.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
    SuppressionReason.HARD_BOUNCE: SubscriberStatus.BOUNCED,
    SuppressionReason.COMPLAINT: SubscriberStatus.COMPLAINED,
}
# A status only moves up this order, so an unsubscribe after a complaint still
# shows "complained" (the more telling fact for deliverability).
_ORDER = [
    SubscriberStatus.PENDING,
    SubscriberStatus.CONFIRMED,
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
    SubscriberStatus.COMPLAINED,
]
_CHUNK = 900  # stays under every backend's bound-parameter limit


def _reason(value: str) -> SuppressionReason:
    try:
        return SuppressionReason(value)
    except ValueError:
        known = ", ".join(r.value for r in SuppressionReason)
        raise ValidationError(
            f"unknown suppression reason {value!r} (use one of {known})"
        ) from None


def is_suppressed(email: str, *, session: Session) -> bool:
    """Whether nothing may be sent to this address."""
    return hash_is_suppressed(address_hash(email), session=session)


def hash_is_suppressed(email_hash: str, *, session: Session) -> bool:
    query = select(Suppression.id).where(Suppression.email_hash == email_hash)
    return session.scalar(query) is not None


def suppression_for(email_hash: str, *, session: Session) -> Suppression | None:
    return session.scalars(select(Suppression).where(Suppression.email_hash == email_hash)).first()


def suppressed_hashes(hashes: Iterable[str], *, session: Session) -> set[str]:
    """The subset of ``hashes`` on the list (chunked, for imports and sends of any size)."""
    unique = list(dict.fromkeys(hashes))
    found: set[str] = set()
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        query = select(Suppression.email_hash).where(Suppression.email_hash.in_(chunk))
        found.update(session.scalars(query))
    return found


def suppress(email: str, reason: str, *, session: Session, note: str | None = None) -> None:
    """Put an address on the list and update its subscriber's status (idempotent).

    An address already on the list keeps its first reason (the record of why it
    was first suppressed); the subscriber's status still follows the new reason,
    so a complaint after an unsubscribe shows as ``complained``.
    """
    suppress_hash(address_hash(email), reason, session=session, note=note)


def suppress_hash(
    email_hash: str,
    reason: str,
    *,
    session: Session,
    note: str | None = None,
    now: datetime | None = None,
) -> None:
    """``suppress`` for a hash (erasure and exports only know the hash)."""
    kind = _reason(reason)
    now = now or utcnow()
    if _insert_ignore(session, email_hash, kind, note, now):
        emit(
            session,
            events.SUBSCRIBER_SUPPRESSED,
            lambda: events.subscriber_suppressed(session, email_hash, kind.value, note, now),
            now=now,
        )
    status = STATUS_FOR_REASON.get(kind)
    if status is None:
        return
    values: dict[str, object] = {"status": status.value}
    if status is SubscriberStatus.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    below = statuses_below(status)
    session.execute(
        update(Subscriber)
        .where(Subscriber.email_hash == email_hash, Subscriber.status.in_(below))
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )


def statuses_below(status: SubscriberStatus) -> list[str]:
    """The statuses a suppression with this status may replace (a status only moves up)."""
    return [s.value for s in _ORDER[: _ORDER.index(status)]]


def lift(email_hash: str, *, session: Session) -> None:
    """Take a hash off the list (only when the person themselves consents again)."""
    row = suppression_for(email_hash, session=session)
    if row is not None:
        session.delete(row)
        session.flush()


def _insert_ignore(
    session: Session, email_hash: str, reason: SuppressionReason, note: str | None, now: datetime
) -> bool:
    """Insert unless the hash is already there, atomically on either backend; inserted?"""
    values = {"email_hash": email_hash, "reason": reason.value, "note": note, "created_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Suppression).values(**values)
    inserted = session.execute(statement.on_conflict_do_nothing(index_elements=["email_hash"]))
    return bool(getattr(inserted, "rowcount", 0))
