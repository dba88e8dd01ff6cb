"""Admin pages: a Jinja environment of their own (``templates/admin``) and the render helper.

Autoescaping is on everywhere: every page shows text editors, importers or
subscribers typed.  Each page gets the signed-in identity, its CSRF token and
the notice named by a ``done`` code (a fixed list, so a crafted link cannot
put words on the page).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from newsletter.config import Settings

ADMIN_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "admin"

NOTICES = {
    "saved": "Saved.",
    "accepted": "Accepted into the library.",
    "rejected": "Rejected: later polls will not offer these again.",
    "source-added": "Source added: the scheduler polls it within minutes, or poll it now.",
    "source-removed": "Source removed; what it brought stays in the inbox and the library.",
    "created": "Created.",
    "imported": "Imported.",
    "test-sent": "A test was sent to your address.",
    "started": "The campaign is sending. Workers (newsletter worker) pick up its batches.",
    "scheduled": "Scheduled.",
    "paused": "Paused.",
    "resumed": "Resumed.",
    "cancelled": "Cancelled.",
    "retried": "Failed recipients are queued again.",
    "suppressed": "The address is suppressed: nothing will be sent to it.",
    "erased": "Erased: only a hash remains, so no import can add the address again.",
    "user-added": "User added.",
    "user-removed": "User removed.",
    "queued": "Queued: the dispatcher sends it within seconds; reload to see the answer.",
    "removed": "Removed.",
    "revoked": "Revoked: the next request with it is refused.",
    "signed-out": "You are signed out.",
    "undone": "Undone: the issue is back as it was before the last change.",
    "restored": "Restored: the issue is back as it was in that revision.",
    "duplicated": "Duplicated: a draft copy of the last issue, dated today.",
    "image-used": "The image is stored, resized for the email, and on the item.",
    "image-stored": "The image is stored in the media library, resized for the email.",
    "resource-added": "Added to the library.",
    "added-image": "Added. This resource has its own image: open the item's “Edit blurb, image "
    "and link” to store a copy resized for the email.",
}


def _when(value: datetime | None, tz_name: str) -> str:
    """A stored UTC time in the organisation's zone, minutes precision."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz_name))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _percent(value: float | None) -> str:
    return "not reported" if value is None else f"{value * 100:.1f}%"


def build_env(settings: Settings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ADMIN_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["organisation"] = settings.organisation
    env.filters["when"] = lambda value: _when(value, settings.timezone)
    env.filters["percent"] = _percent
    return env


def render_text(env: jinja2.Environment, template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)


def notice_for(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("done", ""))


def html(
    env: jinja2.Environment, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return HTMLResponse(render_text(env, template, **context), status_code=status_code)
