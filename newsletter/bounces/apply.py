"""Store each inbound mail once, find its ledger row, and apply it through ``events.ingest``.

All three ways in (``receiver``, ``mailbox``, ``files``) call ``BounceProcessor.process``
and only answer 250, delete the message or move on after it returned, because
by then the mail's row and its effects are committed in one transaction.

Exactly once: the row is keyed by the SHA-256 of the raw bytes and its events
by that digest too, so the same bytes delivered again (an SMTP client retrying
after a lost reply, a poller that crashed between storing and deleting) are
recognised as a duplicate and change nothing.

Which ledger row, in order of trust (the first that answers wins):

1. the VERP token in the address the bounce was sent to (signed: cannot be
   forged); a token whose signature fails is kept and changes nothing else;
2. the original Message-ID inside the report, accepted only if it equals the
   ``provider_id`` recorded for that ledger row (its random half cannot be guessed);
3. the addresses the report names: the subscriber with that address, and
   their latest ledger row.

Nothing found, a test send's bounce, or a mail nobody can read: the row keeps
the raw bytes (``raw``) and a ``note`` saying why, and nothing else changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.bounces.parse import Parsed, our_ledger_id, parse
from newsletter.bounces.verp import Verp, VerpKind
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.models.base import utcnow
from newsletter.models.bounces import InboundKind, InboundMail
from newsletter.models.sending import Delivery
from newsletter.models.subscribers import Subscriber
from newsletter.tracking.events import BouncePolicy, Event, ingest

PROVIDER = "bounces"
EVENT_FOR_KIND = {
    InboundKind.HARD: ("bounce", "hard"),
    InboundKind.SOFT: ("bounce", "soft"),
    InboundKind.COMPLAINT: ("spamreport", None),
}


@dataclass(frozen=True, slots=True)
class Target:
    """Whom a mail is about: a ledger row (maybe), a subscriber's address (maybe)."""

    ledger_id: int | None
    campaign_id: int | None
    email: str | None
    matched_by: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one mail did."""

    parsed: Parsed
    duplicate: bool = False
    targets: tuple[Target, ...] = ()
    applied: int = 0
    note: str | None = None
    suppressed: int = 0
    paused: tuple[int, ...] = ()

    @property
    def kind(self) -> InboundKind:
        return self.parsed.kind


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# --- who ---------------------------------------------------------------------------------


def _ledger_row(session: Session, ledger_id: int, matched_by: str) -> Target | None:
    if not 0 < ledger_id < 2**63:
        return None
    row = session.execute(
        select(Delivery.id, Delivery.campaign_id, Delivery.provider_id, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id == ledger_id)
    ).first()
    if row is None:
        return None
    return Target(int(row.id), int(row.campaign_id), row.email, matched_by)


def _by_message_id(session: Session, message_ids: Sequence[str]) -> Target | None:
    for message_id in message_ids:
        ledger_id = our_ledger_id(message_id)
        if ledger_id is None or not 0 < ledger_id < 2**63:
            continue
        provider_id = session.scalar(select(Delivery.provider_id).where(Delivery.id == ledger_id))
        if provider_id is not None and provider_id.strip() == message_id.strip():
            return _ledger_row(session, ledger_id, "message-id")
    return None


def _by_address(session: Session, addresses: Sequence[str]) -> list[Target]:
    from newsletter.subscribers.addresses import address_hash

    found: list[Target] = []
    for address in addresses:
        try:
            email_hash = address_hash(address)
        except ValidationError:
            continue
        subscriber = session.execute(
            select(Subscriber.id, Subscriber.email).where(Subscriber.email_hash == email_hash)
        ).first()
        if subscriber is None:
            continue
        latest = session.execute(
            select(Delivery.id, Delivery.campaign_id)
            .where(Delivery.subscriber_id == subscriber.id)
            .order_by(Delivery.id.desc())
            .limit(1)
        ).first()
        found.append(
            Target(
                int(latest.id) if latest else None,
                int(latest.campaign_id) if latest else None,
                subscriber.email,
                "address",
            )
        )
    return found


def resolve(session: Session, parsed: Parsed) -> tuple[list[Target], str | None]:
    """The targets of a parsed mail, or none and the reason why."""
    if parsed.kind in (InboundKind.UNPARSED, InboundKind.AUTO_REPLY):
        return [], parsed.problem if parsed.kind is InboundKind.UNPARSED else None
    verp = parsed.verp
    if verp.kind is VerpKind.FORGED:
        return [], "forged or damaged VERP token: nothing applied"
    if verp.kind is VerpKind.TEST:
        return [], "bounce of a test send: nothing applied"
    if verp.kind is VerpKind.LEDGER and verp.ledger_id is not None:
        target = _ledger_row(session, verp.ledger_id, "verp")
        if target is None:
            return [], f"VERP token names ledger row #{verp.ledger_id}, which does not exist"
        return [target], None
    target = _by_message_id(session, parsed.original_ids)
    if target is not None:
        return [target], None
    targets = _by_address(session, parsed.recipients)
    if not targets:
        return [], "no known recipient: nothing applied"
    return targets, None


# --- what --------------------------------------------------------------------------------


def _when(parsed: Parsed, now: datetime) -> datetime:
    """The bounce's own Date (an imported mailbox is months old), never in the future."""
    try:
        stamp = parsedate_to_datetime(parsed.date) if parsed.date else None
    except (TypeError, ValueError, IndexError, OverflowError):
        stamp = None
    if stamp is None or stamp.tzinfo is None or stamp > now:
        return now
    return stamp


def _events(parsed: Parsed, targets: Sequence[Target], digest: str, now: datetime) -> list[Event]:
    mapping = EVENT_FOR_KIND.get(parsed.kind)
    if mapping is None:
        return []
    event, bounce_type = mapping
    reason = " ".join(x for x in (parsed.status, parsed.diagnostic) if x) or parsed.kind.value
    occurred = _when(parsed, now)
    found: list[Event] = []
    for index, target in enumerate(targets):
        if target.email is None and target.ledger_id is None:
            continue
        found.append(
            Event(
                event_id=f"mail-{digest[:40]}-{target.ledger_id or f'a{index}'}",
                event=event,
                email=target.email,
                ledger_id=target.ledger_id,
                campaign_id=target.campaign_id,
                occurred_at=occurred,
                bounce_type=bounce_type,
                reason=reason[:1000],
                provider=PROVIDER,
            )
        )
    return found


_INSERT_ROW = {
    name: dialect.insert(InboundMail)
    .on_conflict_do_nothing(index_elements=["digest"])
    .returning(InboundMail.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}  # built once: values go as parameters, so the compiled statement is cached


def _store_row(session: Session, values: dict[str, Any]) -> bool:
    """Insert the mail's row unless its digest is known; True if it was new."""
    statement = _INSERT_ROW[session.get_bind().dialect.name]
    columns = ("envelope_to", "message_id", "delivery_id", "campaign_id", "status",
               "diagnostic", "matched_by", "note", "raw")  # fmt: skip
    row = {column: None for column in columns} | values
    return session.execute(statement, [row]).scalar() is not None


def apply(
    raw: bytes,
    *,
    session: Session,
    verp: Verp,
    policy: BouncePolicy,
    source: str,
    now: datetime,
    envelope_to: Sequence[str] = (),
    parsed: Parsed | None = None,
) -> Outcome:
    """Parse (unless given), store once, apply; the caller commits."""
    parsed = parsed or parse(raw, verp=verp, envelope_to=envelope_to)
    digest = digest_of(raw)
    if session.scalar(select(InboundMail.id).where(InboundMail.digest == digest)) is not None:
        return Outcome(parsed, duplicate=True)
    targets, note = resolve(session, parsed)
    events = _events(parsed, targets, digest, now)
    first = targets[0] if len(targets) == 1 else None
    values = {
        "digest": digest,
        "source": source,
        "kind": parsed.kind.value,
        "received_at": now,
        "envelope_to": (envelope_to[0][:320] if envelope_to else None),
        "message_id": (parsed.message_id or "")[:998] or None,
        "delivery_id": first.ledger_id if first else None,
        "campaign_id": first.campaign_id if first else None,
        "recipients": len(parsed.recipients),
        "status": parsed.status,
        "diagnostic": parsed.diagnostic,
        "matched_by": targets[0].matched_by if targets else None,
        "applied": len(events),
        "note": note,
        "size": len(raw),
        "raw": raw if not events and parsed.kind is not InboundKind.AUTO_REPLY else None,
    }
    if not _store_row(session, values):
        return Outcome(parsed, duplicate=True)  # a concurrent twin won the insert
    report = ingest(events, session=session, now=now, policy=policy) if events else None
    return Outcome(
        parsed,
        targets=tuple(targets),
        applied=report.stored if report else 0,
        note=note,
        suppressed=report.suppressed if report else 0,
        paused=tuple(report.paused) if report else (),
    )


def record_oversized(
    head: bytes, size: int, limit: int, *, session: Session, source: str, now: datetime
) -> bool:
    """A mail too big to take: its headers are kept (unparsed) so someone can look; True if new."""
    digest = digest_of(head + str(size).encode())
    note = f"too large to read ({size} bytes, limit {limit}): left where it was"
    return _store_row(
        session,
        {
            "digest": digest, "source": source, "kind": InboundKind.UNPARSED.value,
            "received_at": now, "recipients": 0, "applied": 0, "note": note, "size": size,
            "raw": head,
        },
    )  # fmt: skip


def counts_by_kind(session: Session) -> dict[str, int]:
    """How many inbound mails of each kind were stored (the ``unparsed`` counter among them)."""
    rows = session.execute(select(InboundMail.kind, func.count()).group_by(InboundMail.kind))
    counts = {kind.value: 0 for kind in InboundKind}
    counts.update({str(kind): int(n) for kind, n in rows})
    return counts


class BounceProcessor:
    """``apply`` with its collaborators built once from settings, one transaction per mail."""

    def __init__(
        self, db: Database, settings: Settings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db, self.settings, self.clock = db, settings, clock
        self.verp = Verp.from_settings(settings)
        self.policy = BouncePolicy.from_settings(settings)

    def parse(self, raw: bytes, envelope_to: Sequence[str] = ()) -> Parsed:
        return parse(raw, verp=self.verp, envelope_to=envelope_to)

    def process(self, raw: bytes, *, source: str, envelope_to: Sequence[str] = ()) -> Outcome:
        """Store and apply one mail; committed when this returns."""
        parsed = self.parse(raw, envelope_to)
        with self.db.session() as session:
            return apply(
                raw, session=session, verp=self.verp, policy=self.policy, source=source,
                now=self.clock(), envelope_to=envelope_to, parsed=parsed,
            )  # fmt: skip

    def oversized(self, head: bytes, size: int, *, source: str) -> bool:
        with self.db.session() as session:
            return record_oversized(
                head, size, self.settings.bounce_max_message_bytes, session=session,
                source=source, now=self.clock(),
            )  # fmt: skip
