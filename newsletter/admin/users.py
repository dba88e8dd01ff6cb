"""Admin accounts: add, list, remove, and check a password (argon2id).

Used by ``newsletter users`` and by the admin's settings page.  Passwords are
only ever stored as argon2id hashes; a login for an unknown address still
verifies against a dummy hash so the answer takes as long either way and
timing cannot reveal who has an account.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.models.accounts import Role, User
from newsletter.models.base import utcnow
from newsletter.subscribers.addresses import normalise_email

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 copes; this only stops a megabyte "password" from costing CPU
HASHER = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of nothing anyone types, verified when the account does not exist."""
    return HASHER.hash("no such account: constant-time stand-in")


def check_role(role: str) -> str:
    if role not in set(Role):
        raise ValidationError(f"role must be one of {', '.join(Role)}, not {role!r}")
    return role


def check_password(password: str) -> str:
    """Long enough to resist guessing; we do not impose character classes (NIST 800-63B)."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"a password may have at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise ValidationError("a password cannot contain a NUL character")
    return password


def find_user(email: str, *, session: Session) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def get_user(email: str, *, session: Session) -> User:
    user = find_user(email, session=session)
    if user is None:
        raise NotFoundError(f"no user {normalise_email(email)}")
    return user


def list_users(*, session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def add_user(email: str, password: str, role: str, *, session: Session) -> User:
    """A new account; refuses an address already taken."""
    address = normalise_email(email)
    check_role(role)
    check_password(password)
    if find_user(address, session=session) is not None:
        raise ValidationError(f"{address} already has an account")
    user = User(email=address, password_hash=HASHER.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str, *, session: Session) -> None:
    """Change a password and sign the user out everywhere (their sessions go with it)."""
    user.password_hash = HASHER.hash(check_password(password))
    user.sessions.clear()
    session.flush()


def admin_count(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).where(User.role == Role.ADMIN)) or 0)


def remove_user(email: str, *, session: Session, keep_an_admin: bool = False) -> None:
    """Delete an account; its sessions go with it (signed out at once)."""
    user = get_user(email, session=session)
    if keep_an_admin and user.role == Role.ADMIN and admin_count(session=session) <= 1:
        raise StateError("this is the last admin; add another admin before removing it")
    session.delete(user)
    session.flush()


def authenticate(email: str, password: str, *, session: Session) -> User | None:
    """The user if the password is right, else ``None`` (same work for unknown addresses)."""
    try:
        address = normalise_email(email)
    except ValidationError:
        address = ""
    user = find_user(address, session=session) if address else None
    stored = user.password_hash if user is not None else _dummy_hash()
    try:
        HASHER.verify(stored, password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    user.last_login_at = utcnow()
    session.flush()
    return user
