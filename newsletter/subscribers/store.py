"""Small building blocks the service and the CSV import share: look-ups, input checks, events."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, ValidationError
from newsletter.message import check_header_value
from newsletter.models.base import utcnow
from newsletter.models.subscribers import ConsentEvent, ConsentKind, Subscriber
from newsletter.subscribers.addresses import normalise_email, require_text

NAME_MAX = 200
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something and from where: the context every consent event records."""

    source: str  # form name, "api:subscribe", "csv:path", "cli"
    ip: str | None = None
    user_agent: str | None = None


CLI = Actor(source="cli")


def clean_name(raw: str | None) -> str | None:
    """A display name safe for a ``To:`` header, or ``ValidationError``.

    Line breaks and NUL are refused outright (header injection); other control
    characters are refused too, since no real name has them.
    """
    if raw is None:
        return None
    check_header_value("name", raw)  # CR, LF, NUL and every Unicode line break
    require_text(raw, "name")
    if any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise ValidationError("name contains a control character")
    name = " ".join(raw.split())
    if len(name) > NAME_MAX:
        raise ValidationError(f"name is longer than {NAME_MAX} characters")
    return name or None


def clean_topics(raw: Iterable[str], allowed: Sequence[str]) -> list[str]:
    """The chosen topics spelt as configured (case-insensitive), or ``ValidationError``."""
    canonical = {name.casefold(): name for name in allowed}
    chosen: list[str] = []
    for topic in raw:
        name = canonical.get(topic.strip().casefold())
        if name is None:
            raise ValidationError(f"unknown topic {topic.strip()[:100]!r}")
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def find(email: str, *, session: Session) -> Subscriber | None:
    """The subscriber with this address (normalised first), if any."""
    query = select(Subscriber).where(Subscriber.email == normalise_email(email))
    return session.scalars(query).first()


def get(email: str, *, session: Session) -> Subscriber:
    """Like ``find`` but a missing subscriber is a ``NotFoundError``."""
    row = find(email, session=session)
    if row is None:
        raise NotFoundError(f"no subscriber with address {normalise_email(email)}")
    return row


def by_emails(emails: Sequence[str], *, session: Session) -> dict[str, Subscriber]:
    """Existing subscribers for many normalised addresses, in chunked queries."""
    found: dict[str, Subscriber] = {}
    for start in range(0, len(emails), _CHUNK):
        query = select(Subscriber).where(Subscriber.email.in_(emails[start : start + _CHUNK]))
        found.update((row.email, row) for row in session.scalars(query))
    return found


def record(
    session: Session,
    kind: ConsentKind,
    *,
    actor: Actor,
    email_hash: str | None,
    subscriber: Subscriber | None = None,
    consent_text: str | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> ConsentEvent:
    """Append one event to the consent trail."""
    event = ConsentEvent(
        subscriber_id=subscriber.id if subscriber is not None else None,
        email_hash=email_hash,
        kind=kind.value,
        at=now or utcnow(),
        ip=_clip(actor.ip, 45),
        user_agent=_clip(actor.user_agent, 500),
        source=actor.source[:300],
        consent_text=consent_text,
        detail=detail,
    )
    session.add(event)
    return event


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None
