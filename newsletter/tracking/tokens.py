"""Short signed tokens for tracked links and the open pixel, cheap enough for a million sends.

A token names one ledger row (``deliveries.id``), the issue, and a position:
0 is the open pixel, 1..N the issue's links (``issue_links.position``).  It is
``{delivery:x}.{issue:x}.{position:x}.{mac}``, about 26 characters, where the
MAC is 72 bits, so a token cannot be guessed, altered or moved to another
recipient or link.

Signing every link of every message one HMAC at a time would cost a few
microseconds per link, per recipient.  Instead the MACs of all of a
recipient's links come from one SHAKE-128 output keyed with a secret prefix
(sound for Keccak, which has no length extension: the construction KMAC
standardises), and link ``p`` takes bytes ``9p .. 9p+9`` of it: one SHAKE
and one base64 call per recipient, whatever the number of links.  Verifying
needs no database, so the redirect answers while it is down.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import urlsafe_b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAC_BYTES = 9  # 72 bits; 9 bytes are exactly 12 base64 characters, no padding
MAC_CHARS = 12
MAX_POSITION = 10_000  # no issue has more links; bounds the work a forged token can ask for
OPEN = 0  # the position of the open pixel
_SALT = b"newsletter.tracking.v1"


@dataclass(frozen=True, slots=True)
class Hit:
    """What a verified token names."""

    delivery_id: int
    issue_id: int
    position: int


def _derive(secret: str) -> Any:
    """A SHAKE-128 already fed with a key derived from ``secret`` (copied per recipient)."""
    key = hmac.new(secret.encode(), _SALT, hashlib.sha256).digest()
    return hashlib.shake_128(key + b"\x00")


class LinkSigner:
    """Makes tokens with the signing key; verifies with every key of the keyring."""

    def __init__(self, keys: Sequence[str]) -> None:
        """``keys`` oldest first, the signing key last (``Keyring.verifying``)."""
        if not keys:
            raise ValueError("LinkSigner needs at least one key")
        self._protos = [_derive(k) for k in reversed(keys)]  # the signing key first

    def _stream(self, proto: Any, delivery_id: int, issue_id: int, count: int) -> bytes:
        shake = proto.copy()
        shake.update(f"{delivery_id}.{issue_id}".encode())
        return bytes(shake.digest(MAC_BYTES * count))

    def macs(self, delivery_id: int, issue_id: int, count: int) -> str:
        """The MACs of positions ``0 .. count-1``, 12 characters each, in one string."""
        stream = self._stream(self._protos[0], delivery_id, issue_id, count)
        return urlsafe_b64encode(stream).decode("ascii")

    def tokens(self, delivery_id: int, issue_id: int, count: int) -> list[str]:
        """Tokens for positions ``0 .. count-1`` (the pixel, then each link)."""
        macs = self.macs(delivery_id, issue_id, count)
        head = f"{delivery_id:x}.{issue_id:x}."
        return [f"{head}{p:x}.{macs[p * MAC_CHARS : (p + 1) * MAC_CHARS]}" for p in range(count)]

    def verify(self, token: str) -> Hit | None:
        """What a genuine token names; ``None`` for anything forged, truncated or malformed."""
        parts = token.split(".")
        if len(parts) != 4 or len(parts[3]) != MAC_CHARS:
            return None
        if any(not p or len(p) > 16 for p in parts[:3]):
            return None
        try:
            delivery_id, issue_id, position = (int(p, 16) for p in parts[:3])
        except ValueError:
            return None
        if [f"{v:x}" for v in (delivery_id, issue_id, position)] != parts[:3]:
            return None  # int() also takes "+1", "0x1", "1_0", "0A": only our own spelling
        if not 0 <= position <= MAX_POSITION or delivery_id <= 0 or issue_id <= 0:
            return None
        given = parts[3].encode("ascii", "replace")
        start = position * MAC_BYTES
        for proto in self._protos:
            stream = self._stream(proto, delivery_id, issue_id, position + 1)[start:]
            if hmac.compare_digest(urlsafe_b64encode(stream), given):
                return Hit(delivery_id, issue_id, position)
        return None
