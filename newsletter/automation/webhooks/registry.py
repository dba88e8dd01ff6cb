"""The endpoints admins register, and what the admin and CLI do with them and their log.

A URL is checked when it is registered and again before every attempt
(``safe_target``): it must be https (or http where private addresses are
allowed), carry no password, and every address its host resolves to must be
public unless ``webhook_allow_private_addresses``.  The dispatcher connects to
the address it checked, so a DNS answer that changes between the check and
the connection (rebinding) cannot aim a delivery at the loopback interface or
a cloud metadata service.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.automation.webhooks import events as ev
from newsletter.automation.webhooks.signing import new_secret
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.models.automation import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookState,
    WebhookSubscription,
)

Resolver = Callable[[str, int], list[str]]
MAX_ENDPOINTS = 50


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host resolves to (a literal address resolves to itself, offline)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError(f"webhook host {host} does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt connects: the checked address, and the name for Host and TLS."""

    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as registered

    @property
    def url(self) -> str:
        """The URL with the checked address in place of the name."""
        shown = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{shown}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = {"https": 443, "http": 80}[self.scheme]
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _parts(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"webhook URL {url!r} is not a URL ({exc})") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        need = "http:// or https://" if allow_private else "https://"
        raise ValidationError(f"webhook URL must start with {need}: {url!r}")
    if not parts.hostname:
        raise ValidationError(f"webhook URL {url!r} has no host")
    if parts.username or parts.password:
        raise ValidationError("webhook URL must not carry a user name or password")
    if any(c.isspace() or ord(c) < 32 for c in url.strip()):
        raise ValidationError("webhook URL must not contain spaces or control characters")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def safe_target(url: str, *, allow_private: bool, resolve: Resolver = system_resolver) -> Target:
    """The address to connect to, or ``ValidationError`` (a private one, no answer, a bad URL)."""
    scheme, host, port, path = _parts(url, allow_private)
    addresses = resolve(host, port)
    if not addresses:
        raise ValidationError(f"webhook host {host} does not resolve")
    if not allow_private:
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise ValidationError(
                f"webhook host {host} resolves to a private or loopback address ({private[0]}); "
                "set webhook_allow_private_addresses to allow it"
            )
    return Target(scheme, host, port, addresses[0], path)


def check_events(chosen: Sequence[str]) -> list[str]:
    """The event types asked for (all of them when none is named), each a known one."""
    wanted = list(dict.fromkeys(e.strip() for e in chosen if e.strip())) or list(ev.EVENTS)
    unknown = [e for e in wanted if e not in ev.EVENTS]
    if unknown:
        raise ValidationError(
            f"unknown webhook event {unknown[0]!r} (one of: {', '.join(ev.EVENTS)})"
        )
    return sorted(wanted)


# --- endpoints -------------------------------------------------------------------------------


def create_endpoint(
    session: Session,
    url: str,
    events: Sequence[str],
    *,
    allow_private: bool,
    actor: str,
    now: datetime,
    description: str = "",
    resolve: Resolver = system_resolver,
) -> tuple[WebhookEndpoint, str]:
    """Register a URL; returns the row and its secret (the only time the secret is shown)."""
    safe_target(url, allow_private=allow_private, resolve=resolve)
    chosen = check_events(events)
    if len(description) > 300:
        raise ValidationError("the description is longer than 300 characters")
    if (session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0) >= MAX_ENDPOINTS:
        raise StateError(f"at most {MAX_ENDPOINTS} webhook endpoints; remove one first")
    secret = new_secret()
    row = WebhookEndpoint(
        url=url.strip(), description=description.strip(), secret=secret, enabled=True,
        created_by=actor, created_at=now,
        subscriptions=[WebhookSubscription(event=e) for e in chosen],
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row, secret


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise NotFoundError(f"no webhook endpoint #{endpoint_id}")
    return row


def set_enabled(session: Session, endpoint_id: int, enabled: bool, *, reason: str = "") -> None:
    """Disable (an admin's choice, or the dispatcher's after a day of failures) or enable again.

    Enabling clears the failure streak: the endpoint gets a fresh day before it
    is disabled again.  Deliveries that waited meanwhile go out.
    """
    row = get_endpoint(session, endpoint_id)
    row.enabled = enabled
    row.disabled_reason = None if enabled else (reason or "disabled by an admin")
    if enabled:
        row.failing_since = None


def remove_endpoint(session: Session, endpoint_id: int) -> None:
    """Delete the endpoint with its log (its deliveries go with it: ON DELETE CASCADE)."""
    row = get_endpoint(session, endpoint_id)
    session.delete(row)
    session.flush()


def endpoint_as_dict(row: WebhookEndpoint) -> dict[str, Any]:
    """JSON-ready, without the secret."""
    return {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "events": row.events,
        "state": row.state,
        "disabled_reason": row.disabled_reason,
        "failing_since": ev.iso(row.failing_since),
        "last_success_at": ev.iso(row.last_success_at),
        "last_failure_at": ev.iso(row.last_failure_at),
        "last_error": row.last_error,
        "created_at": ev.iso(row.created_at),
    }


# --- the log ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogRow:
    """One delivery as the admin and ``webhooks deliveries`` show it."""

    id: int
    endpoint_id: int
    event: str
    event_id: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    excerpt: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    replay_of: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "endpoint_id": self.endpoint_id, "event": self.event,
            "event_id": self.event_id, "status": self.status, "attempts": self.attempts,
            "last_status": self.last_status, "last_error": self.last_error,
            "excerpt": self.excerpt, "created_at": ev.iso(self.created_at),
            "next_attempt_at": ev.iso(self.next_attempt_at),
            "delivered_at": ev.iso(self.delivered_at), "replay_of": self.replay_of,
        }  # fmt: skip


def deliveries(
    session: Session,
    *,
    endpoint_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[LogRow]:
    """The newest deliveries first, with their event's type and public id."""
    d = WebhookDelivery
    query = (
        select(
            d.id, d.endpoint_id, WebhookEvent.type, WebhookEvent.public_id, d.status, d.attempts,
            d.last_status, d.last_error, d.response_excerpt, d.created_at, d.next_attempt_at,
            d.delivered_at, d.replay_of,
        )
        .join(WebhookEvent, WebhookEvent.id == d.event_id)
        .order_by(d.id.desc())
        .limit(limit)
    )  # fmt: skip
    if endpoint_id is not None:
        query = query.where(d.endpoint_id == endpoint_id)
    if status:
        query = query.where(d.status == status)
    return [LogRow(*row) for row in session.execute(query).all()]


def attempts(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.id)
    )
    return list(session.scalars(query))


def replay(session: Session, delivery_id: int, *, now: datetime) -> int:
    """Send a delivery's event again, as a new delivery with a fresh retry window; its id.

    The body (and so the event id) is the same: a receiver that processed it
    already can tell.  A delivery still on its way is not doubled.
    """
    old = session.get(WebhookDelivery, delivery_id)
    if old is None:
        raise NotFoundError(f"no webhook delivery #{delivery_id}")
    if old.status in (WebhookState.PENDING, WebhookState.SENDING):
        raise StateError(f"delivery #{delivery_id} is still {old.status}; it needs no replay")
    fresh = WebhookDelivery(
        event_id=old.event_id, endpoint_id=old.endpoint_id, status=WebhookState.PENDING,
        attempts=0, next_attempt_at=now, created_at=now, replay_of=old.id,
    )  # fmt: skip
    session.add(fresh)
    session.flush()
    return int(fresh.id)
