"""Transports behind one interface, chosen by settings (``build_messenger``)."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    MessageSigner,
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
    "signer_for",
]


def signer_for(settings: Settings) -> MessageSigner | None:
    """DKIM keys loaded (and proved) once per process; None without ``dkim_selectors``.

    Also what ``service.start`` calls before freezing an audience, so a missing
    or broken key stops the start with one line instead of a half-sent campaign.
    """
    if not settings.dkim_selectors or settings.transport in ("sendgrid", "memory"):
        return None
    from newsletter.deliverability.dkim import signer_from

    return signer_from(settings)


def sender_from(settings: Settings) -> Sender:
    return Sender(email=settings.from_email, name=settings.from_name, reply_to=settings.reply_to)


def build_messenger(settings: Settings) -> Messenger:
    """The messenger the settings ask for (SMTP and outbox DKIM-signed with ``dkim_selectors``)."""
    from newsletter.bounces.verp import Verp

    if settings.transport == "outbox":
        return OutboxMessenger(
            settings.outbox_path,
            envelope_sender=Verp.from_settings(settings),
            signer=signer_for(settings),
        )
    if settings.transport == "memory":
        return MemoryMessenger()
    if settings.transport == "smtp":
        from newsletter.transports.smtp import SMTPMessenger  # stdlib only, loaded on demand

        password = settings.smtp_password
        return SMTPMessenger(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            connections=settings.smtp_connections,
            timeout=settings.smtp_timeout_seconds,
            envelope_sender=Verp.from_settings(settings),
            signer=signer_for(settings),
        )
    if settings.transport == "relays":
        from newsletter.deliverability.relays import build_relays

        return build_relays(settings, signer_for(settings))
    if settings.transport == "sendgrid":
        from newsletter.transports.sendgrid import SendGridMessenger  # imports sendgrid lazily

        if settings.sendgrid_api_key is None:
            raise ConfigError(
                "transport 'sendgrid' needs sendgrid_api_key (NEWSLETTER_SENDGRID_API_KEY)"
            )
        return SendGridMessenger(
            settings.sendgrid_api_key.get_secret_value(), host=settings.sendgrid_host
        )
    raise ConfigError(f"transport {settings.transport!r} is not available yet")
