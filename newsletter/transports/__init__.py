"""Transports behind one interface, chosen by settings (``build_messenger``)."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    Messenger,
    Outcome,
    Recipient,
    RecipientResult,
    Sender,
)
from newsletter.transports.memory import MemoryMessenger
from newsletter.transports.outbox import OutboxMessenger

__all__ = [
    "BatchResult",
    "MemoryMessenger",
    "MessageBatch",
    "Messenger",
    "OutboxMessenger",
    "Outcome",
    "Recipient",
    "RecipientResult",
    "Sender",
    "build_messenger",
    "sender_from",
]


def sender_from(settings: Settings) -> Sender:
    return Sender(email=settings.from_email, name=settings.from_name, reply_to=settings.reply_to)


def build_messenger(settings: Settings) -> Messenger:
    """The messenger the settings ask for."""
    if settings.transport == "outbox":
        return OutboxMessenger(settings.outbox_path)
    if settings.transport == "memory":
        return MemoryMessenger()
    raise ConfigError(f"transport {settings.transport!r} is not available yet")
