"""What the admin's deliverability page shows, gathered here so the route stays one line."""

from __future__ import annotations

from typing import Any

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.deliverability.dnscheck import check_dns


def overview(settings: Settings, db: Database) -> dict[str, Any]:
    findings = check_dns(settings)
    return {
        "findings": findings,
        "problems": sum(1 for f in findings if not f.ok),
        "selectors": settings.dkim_selectors,
        "signing_domain": settings.dkim_signing_domain,
    }
