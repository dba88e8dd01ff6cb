"""SendGrid Event Webhook signatures: ECDSA P-256 over timestamp + raw body.

Verification must see the exact bytes SendGrid sent: a body that was parsed
and re-serialised no longer verifies, which is the point.  Stale timestamps
are refused so a captured request cannot be replayed later.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook

from newsletter.errors import ValidationError

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class SignatureError(ValidationError):
    """The webhook request is not provably from SendGrid (or is too old)."""


@lru_cache(maxsize=4)
def _public_key(key: str) -> Any:
    try:
        return EventWebhook().convert_public_key_to_ecdsa(key)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"the configured webhook public key is unusable: {exc}") from None


@dataclass(frozen=True)
class Verifier:
    public_key: str
    max_age_seconds: int

    def verify(self, body: bytes, signature: str | None, timestamp: str | None, now: float) -> None:
        """Raise ``SignatureError`` unless ``body`` is fresh and signed by the configured key."""
        if not signature or not timestamp:
            raise SignatureError("missing signature headers")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise SignatureError("timestamp header is not a number") from None
        if abs(now - sent_at) > self.max_age_seconds:
            raise SignatureError("stale timestamp: the request is too old or from the future")
        try:
            payload = body.decode("utf-8")
            valid = EventWebhook().verify_signature(
                payload, signature, timestamp, _public_key(self.public_key)
            )
        except (UnicodeDecodeError, binascii.Error, ValueError):
            valid = False
        if not valid:
            raise SignatureError("bad signature")
