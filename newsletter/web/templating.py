"""Server-rendered pages: Jinja templates in ``templates/web`` and the page helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from newsletter.config import Settings

WEB_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "web"
STATIC_DIR = WEB_TEMPLATES / "static"


def build_templates(settings: Settings) -> Jinja2Templates:
    """Templates with autoescaping everywhere (every page shows user-typed text)."""
    folders = [str(WEB_TEMPLATES)]
    if settings.template_dir is not None and (settings.template_dir / "web").is_dir():
        folders.insert(0, str(settings.template_dir / "web"))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["organisation"] = settings.organisation
    env.globals["postal_address"] = settings.postal_address
    # The preferences page offers the tracking choice only while tracking is on at all.
    env.globals["tracking_offered"] = settings.tracking
    env.globals["retention_days"] = settings.tracking_retention_days
    return Jinja2Templates(env=env)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render ``template`` with the app's templates."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)
