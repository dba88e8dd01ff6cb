"""An in-memory messenger for tests: records every message, fails on command."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.message import RenderedEmail
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    Outcome,
    RecipientResult,
    message_id,
)


@dataclass(frozen=True, slots=True)
class SentMessage:
    ref: str
    email: str
    message_id: str
    email_message: RenderedEmail


@dataclass
class MemoryMessenger:
    """``outcomes`` maps an address to the outcome it should get (default: accepted)."""

    name: str = "memory"
    max_batch: int = 1000
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    sent: list[SentMessage] = field(default_factory=list)
    calls: int = 0

    def send(self, batch: MessageBatch) -> BatchResult:
        self.calls += 1
        results = []
        for rcpt in batch.recipients:
            outcome = self.outcomes.get(rcpt.email, Outcome.ACCEPTED)
            msg_id = message_id(rcpt.ref, batch.sender)
            if outcome is Outcome.ACCEPTED:
                filled = batch.template.fill({**rcpt.values, "email": rcpt.email})
                self.sent.append(SentMessage(rcpt.ref, rcpt.email, msg_id, filled))
            results.append(RecipientResult(rcpt.ref, outcome, msg_id, detail=str(outcome)))
        return BatchResult(tuple(results))

    def close(self) -> None:
        pass

    def to(self, email: str) -> list[SentMessage]:
        return [m for m in self.sent if m.email == email]
