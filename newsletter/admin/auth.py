"""Sessions, CSRF tokens and the login rate limit: the admin's security core, framework-free.

* A session is a row (``user_sessions``); the browser holds a random token in
  an HttpOnly cookie, signed with ``secret_key`` so a forged or truncated
  cookie is refused before any query.  The row is found by the token's
  SHA-256, so a copy of the table cannot be replayed as cookies.  Sessions end
  after ``ABSOLUTE`` or after ``IDLE`` without a request; deleting the row
  (logout, user removed, password changed) ends them at once.
* CSRF: each session has a synchronizer token that every unsafe request must
  echo (form field or ``X-CSRF-Token`` header).  The login form, which has no
  session yet, uses a signed double-submit nonce instead.
* Failed logins are limited per client IP and per account address, whether or
  not the account exists (the answer never tells which).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models.accounts import Role, User, UserSession

SESSION_COOKIE = "nl_admin"
LOGIN_COOKIE = "nl_admin_login"
ABSOLUTE = timedelta(hours=12)
IDLE = timedelta(hours=2)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
LOGIN_FORM_MAX_AGE = 3600


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is signed in, for one request (a detached copy of the session and user rows)."""

    user_id: int
    email: str
    role: str
    session_id: int
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _signer(settings: Settings) -> Signer:
    return Signer(settings.keyring.verifying, salt="newsletter.admin.session")


def cookie_value(settings: Settings, token: str) -> str:
    return _signer(settings).sign(token).decode()


def token_from_cookie(settings: Settings, value: str | None) -> str | None:
    """The session token if the cookie's signature holds, else ``None``."""
    if not value:
        return None
    try:
        return _signer(settings).unsign(value).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


def open_session(
    user: User, *, session: Session, now: datetime, ip: str | None, user_agent: str | None
) -> str:
    """A new session row for ``user``; returns the raw token (only the cookie holds it)."""
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=token_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
            created_at=now, last_seen_at=now, expires_at=now + ABSOLUTE,
            ip=ip, user_agent=(user_agent or "")[:300] or None,
        )
    )  # fmt: skip
    session.execute(delete(UserSession).where(UserSession.expires_at <= now))
    session.flush()
    return token


def load_identity(token: str, *, session: Session, now: datetime) -> Identity | None:
    """The identity behind a live session token; an expired or idle session is deleted."""
    row = (
        session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == token_hash(token))
        )
        .tuples()
        .first()
    )
    if row is None:
        return None
    record, user = row
    if record.expires_at <= now or record.last_seen_at + IDLE <= now:
        session.delete(record)
        return None
    if now - record.last_seen_at >= TOUCH_EVERY:
        record.last_seen_at = now
    return Identity(user.id, user.email, user.role, record.id, record.csrf_token)


def close_session(token: str, *, session: Session) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison (a timing leak would let the token be guessed byte by byte)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


# --- the login form's CSRF: signed double submit ----------------------------------------


def _login_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.keyring.verifying, salt="admin-login")


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_form_token(settings: Settings, nonce: str) -> str:
    return _login_serializer(settings).dumps(nonce)


def login_token_ok(settings: Settings, nonce: str | None, form_token: str | None) -> bool:
    """The form's token was signed by us for the nonce in this browser's cookie."""
    if not nonce or not form_token:
        return False
    try:
        signed = _login_serializer(settings).loads(form_token, max_age=LOGIN_FORM_MAX_AGE)
    except BadSignature:
        return False
    return isinstance(signed, str) and tokens_match(signed, nonce)


# --- failed-login limits -------------------------------------------------------------------


class FailureLimiter:
    """At most ``limit`` failures per key in any ``window`` seconds; success clears the key.

    In-process like the public sign-up limiter: the cost of each guess
    (argon2id) is the cross-process brake, this is the per-client one.
    """

    MAX_KEYS = 10_000

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._failures.get(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or ``None`` if it may try now."""
        now = self.clock()
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) < self.limit:
                return None
            return max(1, int(hits[0] + self.window - now) + 1)

    def fail(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            hits = self._recent(key, now)
            hits.append(now)
            self._failures[key] = hits
            if len(self._failures) > self.MAX_KEYS:
                self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


@dataclass
class LoginLimits:
    """Generous per IP (a school shares one), strict per account (guessing one password)."""

    per_ip: FailureLimiter
    per_account: FailureLimiter

    @classmethod
    def default(cls) -> LoginLimits:
        return cls(per_ip=FailureLimiter(30, 900), per_account=FailureLimiter(5, 900))

    def retry_after(self, ip: str, account: str) -> int | None:
        waits = [self.per_ip.retry_after(f"ip:{ip}"), self.per_account.retry_after(account)]
        found = [w for w in waits if w is not None]
        return max(found) if found else None

    def failed(self, ip: str, account: str) -> None:
        self.per_ip.fail(f"ip:{ip}")
        self.per_account.fail(account)

    def succeeded(self, account: str) -> None:
        self.per_account.clear(account)
