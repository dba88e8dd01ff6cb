"""One spelling per mailbox: normalised addresses and their hashes.

Every lookup, uniqueness check and suppression goes through ``normalise_email``
so that ``Ann@Example.org`` and ``ann@example.org `` are the same subscriber and
an unsubscribe for one can never miss the other.  The hash is what outlives an
erasure on the suppression list.
"""

from __future__ import annotations

import hashlib
import unicodedata

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import ValidationError

MAX_LENGTH = 320
_FORBIDDEN = "\r\n\x00"


def _shown(raw: str) -> str:
    """The input as it may appear in an error message: short and on one line."""
    text = raw.strip()
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


def require_text(raw: str, what: str) -> None:
    """Refuse strings that cannot be stored or sent (lone surrogates from bad JSON escapes)."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid Unicode text") from None


def normalise_email(raw: str) -> str:
    """The canonical form of an address, or ``ValidationError`` saying what is wrong.

    Syntax only (no DNS: signing up must not depend on the network).  The whole
    address is lower-cased, not only the domain: providers treat local parts
    case-insensitively in practice, and a case-sensitive match would let an
    unsubscribe or a bounce miss the same mailbox spelt differently.
    """
    if any(ch in raw for ch in _FORBIDDEN):
        raise ValidationError("email address contains a line break or NUL character")
    require_text(raw, "email address")
    text = raw.strip()
    if not text:
        raise ValidationError("email address is empty")
    if len(text) > MAX_LENGTH:
        raise ValidationError(f"email address is longer than {MAX_LENGTH} characters")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"invalid email address {_shown(text)}: {exc}") from None
    return unicodedata.normalize("NFC", result.normalized).lower()


def address_hash(email: str) -> str:
    """SHA-256 hex of the normalised address (accepts raw input and normalises it)."""
    return hashlib.sha256(normalise_email(email).encode("utf-8")).hexdigest()


def hash_normalised(email: str) -> str:
    """``address_hash`` for an address already normalised: skips re-validation in bulk paths."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()
