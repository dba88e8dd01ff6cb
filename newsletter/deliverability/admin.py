"""What the admin's deliverability page shows, gathered here so the route stays one line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.deliverability.dnscheck import check_dns
from newsletter.deliverability.relays import RelayStatus, relay_statuses
from newsletter.deliverability.report import warmup_state
from newsletter.deliverability.sunset import counts as sunset_counts
from newsletter.deliverability.warmup import plan_from


def configured_relays(settings: Settings) -> list[dict[str, Any]]:
    if settings.transport == "relays":
        return [
            {"name": r.name, "kind": r.kind, "weight": r.weight,
             "where": r.sendgrid_host if r.kind == "sendgrid" else f"{r.host}:{r.port}"}
            for r in settings.relays
        ]  # fmt: skip
    if settings.transport == "smtp":
        where = f"{settings.smtp_host}:{settings.smtp_port}"
        return [{"name": "smtp", "kind": "smtp", "weight": 1, "where": where}]
    return []


def overview(settings: Settings, db: Database, *, probe: bool = False) -> dict[str, Any]:
    findings = check_dns(settings)
    relays = configured_relays(settings)
    health: dict[str, RelayStatus] = {}
    if probe and relays:
        health = {status.name: status for status in relay_statuses(settings)}
    plan = plan_from(settings)
    warmup = None
    with db.session() as session:
        if plan is not None:
            warmup = warmup_state(session, plan, datetime.now(UTC))
        sunset = sunset_counts(session)
    return {
        "sunset": sunset,
        "sunset_on": settings.sunset,
        "sunset_after": settings.sunset_after_campaigns,
        "sunset_grace": settings.sunset_grace_days,
        "warmup": warmup,
        "plan": plan,
        "domain_limits": settings.domain_limits,
        "domain_backoff": settings.domain_backoff_seconds,
        "findings": findings,
        "problems": sum(1 for f in findings if not f.ok),
        "selectors": settings.dkim_selectors,
        "signing_domain": settings.dkim_signing_domain,
        "relays": relays,
        "health": health,
        "probed": probe,
        "down_seconds": settings.relay_down_seconds,
        "transport": settings.transport,
    }
