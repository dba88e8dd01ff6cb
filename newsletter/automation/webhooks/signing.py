"""Signatures of webhook deliveries: HMAC-SHA256 over the timestamp and the raw body.

The scheme (README "Verifying a delivery") is Stripe's: the header

    Newsletter-Signature: t=1700000000,v1=5257a869e7ec...8d8bd (64 hex digits)

carries the Unix time of the attempt and the hex HMAC-SHA256, keyed with the
endpoint's secret (the whole ``whsec_...`` string, as UTF-8), of
``f"{t}.{raw_body}"``.  Signing the time stops a captured delivery from being
replayed later; a receiver refuses a timestamp more than a few minutes old.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Newsletter-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept between t= and its clock


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe, with a prefix that says what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Newsletter-Signature`` value for one attempt."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, value: str, body: bytes, *, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> bool:
    """What a receiver does (and what the tests' receiver does): time in range, any v1 matches."""
    parts = [part.partition("=") for part in value.split(",")]
    stamps = [v for k, _, v in parts if k.strip() == "t"]
    given = [v.strip() for k, _, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not given:
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in given)
