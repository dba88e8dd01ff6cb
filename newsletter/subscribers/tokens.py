"""Signed tokens for the links in emails: confirm, unsubscribe, preferences.

Each purpose has its own salt, so a token for one purpose is useless for
another.  The payload is the subscriber id plus a prefix of the address hash:
a token stops working when the subscriber is erased (ids are never reused:
SQLite AUTOINCREMENT, PostgreSQL sequences), and can never open another
subscriber's page.  Confirmation tokens expire; unsubscribe and preferences
tokens never do, because they sit in every email ever sent and must keep
working for as long as the email exists (RFC 8058, CAN-SPAM).

The sender makes one unsubscribe and one preferences token per recipient, for
up to a million recipients, so signers are built once and their derived keys
cached: a token costs one HMAC and a little base64.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from itsdangerous import (
    BadData,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode, want_bytes

from newsletter.config import Settings
from newsletter.errors import TokenError

HASH_PREFIX = 16  # hex characters of the address hash bound into each token
Clock = Callable[[], float]


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


class ExpiredTokenError(TokenError):
    """A well-signed token that is too old (only confirmation tokens expire)."""


@dataclass(frozen=True, slots=True)
class Claims:
    """Who a verified token speaks for."""

    subscriber_id: int
    hash_prefix: str


class TokenBearer(Protocol):
    """Anything with ``id`` and ``email_hash`` (a ``Subscriber``, or a row from a bulk query)."""

    @property
    def id(self) -> int: ...

    @property
    def email_hash(self) -> str: ...


class _CachedKeySigner(Signer):
    """A ``Signer`` that derives its key once instead of on every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[bytes, bytes] = {}
        self._mac: hmac.HMAC | None = None

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = self.secret_keys[-1] if secret_key is None else secret_key
        key = raw.encode() if isinstance(raw, str) else raw
        derived = self._keys.get(key)
        if derived is None:
            derived = self._keys[key] = super().derive_key(key)
        return derived

    def get_signature(self, value: str | bytes) -> bytes:
        """HMAC from a pre-keyed prototype (``copy`` skips re-keying), base64 like itsdangerous."""
        if self._mac is None:
            self._mac = hmac.new(self.derive_key(), digestmod=self.digest_method)
        mac = self._mac.copy()
        mac.update(want_bytes(value))
        return base64_encode(mac.digest())


class _ClockedSigner(_CachedKeySigner, TimestampSigner):
    """A timestamp signer whose clock can be injected (tests freeze time without sleeping)."""

    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock())


class _ReusedSignerMixin:
    """Serializers normally build a new signer per call; reuse one per salt instead.

    Signers hold no per-call state, so sharing one (also across threads) is safe.
    Payloads are never worth compressing (a short JSON list), so the zlib attempt
    itsdangerous makes on every call is skipped; ``loads`` reads both forms.
    """

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(json.dumps(obj, separators=(",", ":")).encode())

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        cache: dict[str | bytes | None, Signer] = self.__dict__.setdefault("_signer_cache", {})
        signer = cache.get(salt)
        if signer is None:
            signer = cache[salt] = super().make_signer(salt)  # type: ignore[misc]
        return signer


class _Serializer(_ReusedSignerMixin, URLSafeSerializer):
    default_signer = _CachedKeySigner


class _TimedSerializer(_ReusedSignerMixin, URLSafeTimedSerializer):
    default_signer = _ClockedSigner


class Tokens:
    """Makes and checks tokens for one keyring; build once (``tokens_for``) and share.

    ``secret`` is the signing key, or a list of keys oldest first with the
    signing key last: tokens signed by any of them verify (key rotation).
    """

    def __init__(
        self,
        secret: str | Sequence[str],
        *,
        confirm_max_age: timedelta,
        clock: Clock = time.time,
    ):
        secret = [secret] if isinstance(secret, str) else list(secret)
        self.confirm_max_age = int(confirm_max_age.total_seconds())
        self._timed = _TimedSerializer(
            secret, salt=f"newsletter.{Purpose.CONFIRM}", signer_kwargs={"clock": clock}
        )
        self._untimed = {
            purpose: _Serializer(secret, salt=f"newsletter.{purpose}")
            for purpose in (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES)
        }

    def make(self, purpose: Purpose, subscriber: TokenBearer) -> str:
        """A URL-safe token for ``subscriber`` that only works for ``purpose``."""
        payload = [subscriber.id, subscriber.email_hash[:HASH_PREFIX]]
        if purpose is Purpose.CONFIRM:
            return self._timed.dumps(payload)
        return self._untimed[purpose].dumps(payload)

    def load(self, purpose: Purpose, token: str) -> Claims:
        """The claims of a genuine, unexpired token; ``TokenError`` for anything else."""
        try:
            if purpose is Purpose.CONFIRM:
                payload = self._timed.loads(token, max_age=self.confirm_max_age)
            else:
                payload = self._untimed[purpose].loads(token)
        except SignatureExpired:
            raise ExpiredTokenError("this link has expired") from None
        except (BadData, UnicodeError):  # forged, truncated, or not even encodable text
            raise TokenError("this link is not valid") from None
        return _claims(payload)

    def matches(self, claims: Claims, subscriber: TokenBearer) -> bool:
        """Whether verified claims belong to this (still existing, same-address) subscriber."""
        return claims.subscriber_id == subscriber.id and subscriber.email_hash.startswith(
            claims.hash_prefix
        )


def _claims(payload: Any) -> Claims:
    """Shape-check a signed payload (signed by us, but old formats must fail cleanly)."""
    ok = (
        isinstance(payload, list)
        and len(payload) == 2
        and isinstance(payload[0], int)
        and isinstance(payload[1], str)
        and len(payload[1]) == HASH_PREFIX
    )
    if not ok:
        raise TokenError("this link is not valid")
    return Claims(subscriber_id=payload[0], hash_prefix=payload[1])


@lru_cache(maxsize=8)
def _cached_tokens(keys: tuple[str, ...], max_age_days: int) -> Tokens:
    return Tokens(keys, confirm_max_age=timedelta(days=max_age_days))


def tokens_for(settings: Settings) -> Tokens:
    """The shared ``Tokens`` for these settings (cached: signers and keys are built once)."""
    keys = tuple(settings.keyring.verifying)
    return _cached_tokens(keys, settings.confirm_token_max_age_days)
