"""Mail that came back (bounces, complaints, auto-replies) and the reputation guard's baselines.

Every inbound mail gets one ``inbound_mail`` row, keyed by the SHA-256 of its
raw bytes, written before the receiver answers 250 or the poller deletes the
message: the key makes a second delivery of the same bytes (a crash between
storing and deleting, an SMTP client retrying after a lost reply) a no-op.
The raw bytes are kept when nothing could be applied (unparsed mail, an
unknown address, a forged VERP token) so an admin can read and re-ingest it;
for mail that was applied only the parsed facts are kept.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class InboundKind(StrEnum):
    HARD = "hard"  # permanent failure (5.x.x): the address is suppressed
    SOFT = "soft"  # temporary failure (4.x.x, or 5.2.2 mailbox full): counted
    COMPLAINT = "complaint"  # an ARF feedback-loop report: unsubscribed and suppressed
    AUTO_REPLY = "auto-reply"  # out of office, vacation, ticket robots: not a bounce
    UNPARSED = "unparsed"  # none of the above could be read: kept for a person


class InboundMail(Base):
    __tablename__ = "inbound_mail"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # smtp, imap, pop3, file
    kind: Mapped[str] = mapped_column(String(20), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    envelope_to: Mapped[str | None] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(998))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str | None] = mapped_column(String(20))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    matched_by: Mapped[str | None] = mapped_column(String(20))  # verp, message-id, address
    applied: Mapped[int] = mapped_column(Integer, default=0)  # events that changed the ledger
    note: Mapped[str | None] = mapped_column(Text)  # why nothing was applied
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)


class GuardBaseline(Base):
    """Where the reputation guard starts counting again after an admin resumed a campaign."""

    __tablename__ = "guard_baselines"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    complaints: Mapped[int] = mapped_column(Integer, default=0)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    resumed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
