"""Signed link tokens: purposes, binding to one subscriber, expiry, tampering, cost."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from itsdangerous import URLSafeSerializer

from newsletter.errors import TokenError
from newsletter.subscribers.tokens import ExpiredTokenError, Purpose, Tokens

NOW = 1_900_000_000.0
DAY = 86_400


@dataclass(frozen=True)
class Bearer:
    id: int
    email_hash: str


def bearer(id_: int, email: str) -> Bearer:
    return Bearer(id_, hashlib.sha256(email.encode()).hexdigest())


def tokens(clock: float = NOW, secret: str = "s3cret") -> Tokens:
    return Tokens(secret, confirm_max_age=timedelta(days=7), clock=lambda: clock)


ANN = bearer(1, "ann@example.org")
BOB = bearer(2, "bob@example.org")


@pytest.mark.parametrize("purpose", list(Purpose))
def test_round_trip_binds_id_and_hash_prefix(purpose: Purpose) -> None:
    t = tokens()
    claims = t.load(purpose, t.make(purpose, ANN))
    assert claims.subscriber_id == 1
    assert t.matches(claims, ANN)
    assert not t.matches(claims, BOB)
    assert not t.matches(claims, bearer(1, "other@example.org"))  # same id, other address


@pytest.mark.parametrize(
    ("made_for", "used_for"),
    [(a, b) for a in Purpose for b in Purpose if a is not b],
)
def test_token_for_one_purpose_fails_for_another(made_for: Purpose, used_for: Purpose) -> None:
    t = tokens()
    with pytest.raises(TokenError):
        t.load(used_for, t.make(made_for, ANN))


@pytest.mark.parametrize("purpose", list(Purpose))
def test_tampered_tokens_fail(purpose: Purpose) -> None:
    t = tokens()
    token = t.make(purpose, ANN)
    _, _, rest = token.partition(".")
    forged_payload = URLSafeSerializer("wrong").dump_payload([2, BOB.email_hash[:16]]).decode()
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        forged_payload + "." + rest,
        token + "x",
        "",
        "not-a-token",
        "é" * 40,
        "\ud800",  # a lone surrogate cannot even be encoded
    ):
        with pytest.raises(TokenError):
            t.load(purpose, bad)


def test_other_secret_fails() -> None:
    with pytest.raises(TokenError):
        tokens(secret="other").load(Purpose.UNSUBSCRIBE, tokens().make(Purpose.UNSUBSCRIBE, ANN))


def test_confirmation_expires_after_max_age() -> None:
    issued = tokens(clock=NOW).make(Purpose.CONFIRM, ANN)
    assert tokens(clock=NOW + 6 * DAY).load(Purpose.CONFIRM, issued).subscriber_id == 1
    with pytest.raises(ExpiredTokenError):
        tokens(clock=NOW + 8 * DAY).load(Purpose.CONFIRM, issued)


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.PREFERENCES])
def test_unsubscribe_and_preferences_never_expire(purpose: Purpose) -> None:
    issued = tokens(clock=NOW - 400 * DAY).make(purpose, ANN)
    assert tokens(clock=NOW).load(purpose, issued).subscriber_id == 1


def test_signed_shape_other_than_ours_is_rejected() -> None:
    """A genuine signature over an unexpected payload (old format) fails cleanly."""
    raw = URLSafeSerializer("s3cret", salt="newsletter.unsubscribe").dumps({"id": 1})
    with pytest.raises(TokenError):
        tokens().load(Purpose.UNSUBSCRIBE, raw)


def test_tokens_are_plain_itsdangerous_tokens() -> None:
    """Our speed-ups keep the wire format: stock itsdangerous reads our tokens and vice versa."""
    t = tokens()
    stock = URLSafeSerializer("s3cret", salt="newsletter.unsubscribe")
    assert stock.loads(t.make(Purpose.UNSUBSCRIBE, ANN)) == [1, ANN.email_hash[:16]]
    assert t.load(Purpose.UNSUBSCRIBE, stock.dumps([2, BOB.email_hash[:16]])).subscriber_id == 2


def test_token_creation_is_cheap() -> None:
    """The sender makes two tokens per recipient for up to a million recipients."""
    t = tokens()
    start = time.perf_counter()
    for i in range(20_000):
        t.make(Purpose.UNSUBSCRIBE, Bearer(i, ANN.email_hash))
    per_token = (time.perf_counter() - start) / 20_000
    assert per_token < 50e-6, f"{per_token * 1e6:.1f} µs per token"
