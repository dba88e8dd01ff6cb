"""VERP envelope senders: ``bounces+{ledger id}-{signature}@{bounce domain}``.

Why VERP: a bounce is addressed to the envelope sender of the message that
failed, and that address survives the worst-mangled report, so signing the
ledger id into it names the recipient even when the report inside names no
one (or the wrong one: forwarding, aliases).

The token is short and survives MTAs that change the case of local parts: the
ledger id in base 36 and 50 bits of HMAC-SHA256 in RFC 4648 base32, both
lowercase, compared in constant time after lowercasing.  Forging one means
guessing the signature (one chance in 2**50 a try); a forged token is refused
like any other unknown address.  Non-ledger mail (test sends, confirmations)
gets a recognisable unsigned address: ``bounces+test@`` or plain ``bounces@``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from newsletter.config import Settings

_MAC_CHARS = 10  # base32 characters: 50 bits
_ALPHABET36 = "0123456789abcdefghijklmnopqrstuvwxyz"
TEST_TAG = "test"


class VerpKind(StrEnum):
    LEDGER = "ledger"  # a valid signed token: ``ledger_id`` is set
    TEST = "test"  # a test send's address
    PLAIN = "plain"  # the bare bounce address (confirmations, or a report sent to it by hand)
    EXTRA = "extra"  # fbl@, abuse@, postmaster@ of the bounce domain
    FORGED = "forged"  # the shape of a token whose signature does not verify
    FOREIGN = "foreign"  # not an address of the bounce domain at all


@dataclass(frozen=True, slots=True)
class VerpMatch:
    kind: VerpKind
    ledger_id: int | None = None

    @property
    def ours(self) -> bool:
        """Whether the receiver accepts mail for this address."""
        return self.kind is not VerpKind.FOREIGN


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _ALPHABET36[rest] + digits
        if not number:
            return digits


class Verp:
    """Build and check bounce addresses for one secret key and bounce domain."""

    def __init__(
        self,
        secret: str | tuple[str, ...],
        domain: str,
        local_part: str = "bounces",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.domain = domain.lower()
        self.local_part = local_part.lower()
        self.extra = frozenset(part.lower() for part in extra)
        # One secret signs (the last, as ``Keyring.verifying`` orders them); all verify, so a
        # bounce for mail sent before a key rotation still names its recipient.
        secrets = (secret,) if isinstance(secret, str) else secret
        self._macs = [
            hmac.new(hashlib.sha256(b"newsletter-verp\x00" + s.encode()).digest(),
                     digestmod=hashlib.sha256)  # copied per token: no key set-up
            for s in reversed(secrets)
        ]  # fmt: skip
        self._mac = self._macs[0]
        self._prefix = f"{self.local_part}+"
        self._suffix = f"@{self.domain}"

    @classmethod
    def from_settings(cls, settings: Settings) -> Verp:
        return cls(
            tuple(settings.keyring.verifying),
            settings.bounce_domain_name,
            settings.bounce_local_part,
            tuple(settings.bounce_extra_local_parts),
        )

    def _sign(self, id36: str, mac_key: hmac.HMAC | None = None) -> str:
        mac = (mac_key or self._mac).copy()
        mac.update(id36.encode("ascii"))
        return base64.b32encode(mac.digest()[:7]).decode("ascii")[:_MAC_CHARS].lower()

    def address(self, ref: str) -> str:
        """The envelope sender for a recipient ref (a ledger id, or a test or other ref)."""
        if ref.isdigit() and ref.isascii():
            id36 = _base36(int(ref))
            return f"{self._prefix}{id36}-{self._sign(id36)}{self._suffix}"
        if ref.startswith("test-"):
            return f"{self._prefix}{TEST_TAG}{self._suffix}"
        return f"{self.local_part}{self._suffix}"

    __call__ = address  # a Messenger's ``envelope_sender``: ref -> address

    def match(self, address: str) -> VerpMatch:
        """What an address of (maybe) ours names; never raises, whatever the input."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        if domain != self.domain or not local:
            return VerpMatch(VerpKind.FOREIGN)
        if local == self.local_part:
            return VerpMatch(VerpKind.PLAIN)
        if local in self.extra:
            return VerpMatch(VerpKind.EXTRA)
        base, plus, tag = local.partition("+")
        if base != self.local_part or not plus:
            return VerpMatch(VerpKind.FOREIGN)
        if tag == TEST_TAG:
            return VerpMatch(VerpKind.TEST)
        id36, dash, mac = tag.partition("-")
        valid = (
            dash
            and 0 < len(id36) <= 13
            and all(ch in _ALPHABET36 for ch in id36)
            and any(
                hmac.compare_digest(mac.encode("ascii", "replace"), self._sign(id36, k).encode())
                for k in self._macs
            )
        )
        if not valid:
            return VerpMatch(VerpKind.FORGED)
        return VerpMatch(VerpKind.LEDGER, int(id36, 36))
