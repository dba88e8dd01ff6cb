"""Scoped API tokens for ``/api/v1``: created once, stored as a hash, checked on every request.

A token is ``nlt_`` followed by 40 random URL-safe characters (240 bits), so
a secret scanner can recognise one in a leaked file.  Only its SHA-256 is
stored: high entropy makes a slow password hash pointless, and a fast one
lets every request be checked against the database, so a revocation or an
expiry takes effect on the very next request (nothing is cached).  The
last-used time is written at most once a minute per token, so a busy client
does not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from newsletter.errors import AuthenticationError, ForbiddenError, NotFoundError, ValidationError
from newsletter.models.automation import ApiToken

PREFIX = "nlt_"
SCOPES: dict[str, str] = {
    "subscribers:read": "list and read subscribers",
    "subscribers:write": "add, change and unsubscribe subscribers",
    "campaigns:read": "list campaigns and read their reports",
    "campaigns:send": "create campaigns and start them",
    "resources:write": "add and edit library resources",
}
LAST_USED_EVERY = timedelta(minutes=1)
_DURATION = re.compile(r"^\s*(\d{1,5})\s*([dhw])\s*$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expiry(text: str, *, now: datetime) -> datetime | None:
    """``90d``, ``12h``, ``2w`` from now, or ``never``."""
    if text.strip().lower() == "never":
        return None
    found = _DURATION.match(text.lower())
    if not found or int(found.group(1)) == 0:
        raise ValidationError(f"expiry {text!r} is not like 90d, 12h, 2w or never")
    unit = {"d": "days", "h": "hours", "w": "weeks"}[found.group(2)]
    return now + timedelta(**{unit: int(found.group(1))})


def check_scopes(scopes: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not chosen:
        raise ValidationError(f"a token needs at least one scope (of: {', '.join(SCOPES)})")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise ValidationError(f"unknown scope {unknown[0]!r} (one of: {', '.join(SCOPES)})")
    return sorted(chosen)


def create_token(
    session: Session,
    name: str,
    scopes: Sequence[str],
    *,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
) -> tuple[ApiToken, str]:
    """A new token; returns the row and the token itself (the only time it exists in clear)."""
    label = " ".join(name.split())
    if not label or len(label) > 100:
        raise ValidationError("a token needs a name of 1 to 100 characters")
    chosen = check_scopes(scopes)
    if expires_at is not None and expires_at <= now:
        raise ValidationError("the expiry must be in the future")
    token = PREFIX + secrets.token_urlsafe(30)
    row = ApiToken(
        name=label, prefix=token[:12], token_hash=hash_token(token), scopes=chosen,
        created_by=actor, created_at=now, expires_at=expires_at,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke(session: Session, token_id: int, *, now: datetime) -> bool:
    """Revoke at once (the next request with it is refused); ``False`` if already revoked."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFoundError(f"no API token #{token_id}")
    if row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True


def authenticate(session: Session, token: str | None, *, now: datetime) -> ApiToken:
    """The active token behind a bearer value, its last-used time noted; else 401."""
    if not token:
        raise AuthenticationError("an API token is required (Authorization: Bearer nlt_...)")
    if not token.startswith(PREFIX) or len(token) > 200:
        raise AuthenticationError("this is not an API token")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        raise AuthenticationError("unknown API token")
    state = row.state(now)
    if state != "active":
        raise AuthenticationError(f"this API token is {state}")
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == row.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return row


def require(row: ApiToken, scope: str) -> None:
    if scope not in (row.scopes or []):
        raise ForbiddenError(f"this API token lacks the {scope} scope")


def token_as_dict(row: ApiToken, now: datetime) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id, "name": row.name, "prefix": row.prefix, "scopes": row.scopes,
        "state": row.state(now), "created_by": row.created_by,
        "created_at": iso(row.created_at), "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at), "revoked_at": iso(row.revoked_at),
    }  # fmt: skip
