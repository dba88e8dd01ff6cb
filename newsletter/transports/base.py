"""The one transport seam: a ``Messenger`` takes a batch and returns per-recipient outcomes.

Partial failure is data (Mailman 3): a messenger never raises because one
recipient was refused; it returns ``TEMPORARY`` or ``PERMANENT`` for that
recipient.  ``BatchResult.error`` reports a failure of the transport as a whole
(outbox not writable, credentials refused) so the engine can pause the campaign.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from newsletter.message import Template


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # the provider or relay took responsibility
    TEMPORARY = "temporary"  # try again later (SMTP 4xx, HTTP 429/5xx before sending)
    PERMANENT = "permanent"  # will never go (SMTP 5xx for this address, HTTP 400)
    UNKNOWN = "unknown"  # maybe sent: the request left but no answer came back


@dataclass(frozen=True, slots=True)
class Sender:
    email: str
    name: str
    reply_to: str | None = None

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2] or "localhost"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One addressee: ``ref`` (the ledger id) travels to the provider and back in webhooks."""

    ref: str
    email: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """One template for many recipients: what a provider can send in one call."""

    template: Template
    sender: Sender
    recipients: Sequence[Recipient]
    custom_args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecipientResult:
    ref: str
    outcome: Outcome
    provider_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: tuple[RecipientResult, ...]
    retry_after: float | None = None  # seconds the provider asked us to wait
    error: str | None = None  # the transport as a whole failed; pause and tell the admin
    # The relay as a whole could not take mail (no connection, login or sender refused):
    # the recipients it left TEMPORARY were never handed to it, so another relay may.
    down: str | None = None
    relay: str | None = None  # which relay carried the batch (recorded on send_batches)

    def by_outcome(self, outcome: Outcome) -> list[RecipientResult]:
        return [r for r in self.results if r.outcome is outcome]


def uniform(
    batch: MessageBatch,
    outcome: Outcome,
    detail: str,
    *,
    error: str | None = None,
    retry_after: float | None = None,
) -> BatchResult:
    """The same outcome for every recipient (a whole-batch answer)."""
    results = tuple(RecipientResult(r.ref, outcome, detail=detail) for r in batch.recipients)
    return BatchResult(results, retry_after=retry_after, error=error)


def message_id(ref: str, sender: Sender) -> str:
    """A globally unique Message-ID that still names the ledger row, for support look-ups."""
    safe = "".join(ch for ch in ref if ch.isalnum() or ch in "-_.") or "msg"
    return f"<{safe}.{uuid.uuid4().hex}@{sender.domain}>"


class MessageSigner(Protocol):
    """Adds signature headers (DKIM) to a message's final wire bytes."""

    def sign(self, message: bytes) -> bytes: ...


class Messenger(Protocol):
    """A transport: SendGrid, SMTP, outbox or memory."""

    name: str
    max_batch: int

    def send(self, batch: MessageBatch) -> BatchResult: ...

    def close(self) -> None: ...
