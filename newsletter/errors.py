"""One exception hierarchy for the whole package.

Library code raises these; entry points (CLI, web, scheduler) map them to one
clear line (CLI: stderr + exit 1) or an HTTP status.  Anything that is *not* a
``NewsletterError`` is a bug and is allowed to surface as a traceback.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the user can cause and fix."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(NewsletterError):
    """Settings are missing or invalid."""


class DatabaseError(NewsletterError):
    """The database cannot be reached or is in an unusable state."""


class ImportFormatError(NewsletterError):
    """An input file is corrupt, of an unknown format, or lacks required data."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        # One line, whatever the quoted file content held (CSV cells and JSON keys can
        # span lines): the CLI prints it as the single line after "error:".
        super().__init__(" ".join(message.split()), where=where)


class NotFoundError(NewsletterError):
    """A referenced object (resource, issue, subscriber, campaign) does not exist."""


class ValidationError(NewsletterError):
    """User input is well-formed but not acceptable (bad email, CRLF in a header, ...)."""


class RenderError(NewsletterError):
    """A template or issue could not be rendered."""


class PreflightError(NewsletterError):
    """An issue failed its pre-send checks; ``problems`` lists every failure."""

    def __init__(self, problems: list[str], *, where: str | None = None) -> None:
        super().__init__("; ".join(problems), where=where)
        self.problems = problems


class TokenError(NewsletterError):
    """A signed token is tampered with, expired, or meant for another purpose."""


class TransportError(NewsletterError):
    """A transport failed as a whole (not per recipient: those are returned as data)."""


class StateError(NewsletterError):
    """An operation is not allowed in the object's current state."""


class DuplicateSendError(StateError):
    """The issue already went (or is going) to this audience; only an explicit resend repeats it."""


class AuthenticationError(NewsletterError):
    """No API token, or one that is unknown, expired or revoked (HTTP 401)."""


class ForbiddenError(NewsletterError):
    """An API token without the scope a route needs (HTTP 403)."""


class DnsLookupError(NewsletterError):
    """A DNS query got no answer in time, or the resolver failed (not: the name has no record)."""


class FetchError(NewsletterError):
    """A page or feed could not be fetched: no answer, refused address, too large, a loop.

    ``reason`` is a short category the callers sort by ("timeout", "network",
    "too_big", "loop", "blocked", "status").
    """

    def __init__(self, message: str, *, reason: str, where: str | None = None) -> None:
        super().__init__(" ".join(message.split()), where=where)
        self.reason = reason
