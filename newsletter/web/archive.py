"""The public archive: sent issues as web pages, and an RSS 2.0 feed of them.

An issue appears once a campaign has sent it (``Issue.published_at``), so a
draft is never public by accident.  The web version is the email's own MJML
output without per-recipient links; it needs inline styles, so its page gets a
CSP of its own that still allows no scripts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, time
from email.utils import format_datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from newsletter.errors import NotFoundError
from newsletter.issues.store import issue_content
from newsletter.models.issues import Issue
from newsletter.render import render_web_version
from newsletter.scheduling.times import zone
from newsletter.web.context import Ctx
from newsletter.web.security import email_image_sources
from newsletter.web.templating import page

router = APIRouter(include_in_schema=False)
WEB_VERSION_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src {images}; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)
CACHE = "public, max-age=300"


def _published(ctx: Ctx) -> list[Issue]:
    with ctx.db.session() as session:
        query = select(Issue).where(Issue.published_at.is_not(None)).order_by(Issue.number.desc())
        return list(session.scalars(query))


@router.get("/archive")
def archive(request: Request, ctx: Ctx) -> Response:
    """Every sent issue, newest first."""
    response = page(request, "archive.html.j2", issues=_published(ctx))
    response.headers["cache-control"] = CACHE
    return response


@router.get("/archive/feed.xml")
def feed(ctx: Ctx) -> Response:
    """RSS 2.0: one item per sent issue, linking to its web version."""
    base = ctx.settings.base_url.rstrip("/")
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = f"{ctx.settings.organisation} newsletter"
    ET.SubElement(channel, "link").text = f"{base}/archive"
    ET.SubElement(
        channel, "description"
    ).text = f"Every issue of the {ctx.settings.organisation} newsletter"
    for issue in _published(ctx):
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = issue.title
        ET.SubElement(item, "link").text = f"{base}/archive/{issue.number}"
        ET.SubElement(item, "guid", isPermaLink="true").text = f"{base}/archive/{issue.number}"
        ET.SubElement(item, "pubDate").text = format_datetime(_dated(issue, ctx))
        ET.SubElement(item, "description").text = issue.preheader or issue.subject
    body = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/rss+xml", headers={"cache-control": CACHE})


def _dated(issue: Issue, ctx: Ctx) -> datetime:
    """An issue's own date (April 2018 for Issue 42), not the day a campaign happened to send it."""
    return datetime.combine(issue.issue_date, time(0), tzinfo=zone(ctx.settings.timezone))


@router.get("/archive/{number}")
def web_version(number: int, ctx: Ctx) -> HTMLResponse:
    """The issue as it was sent, for readers who click "view in browser"."""
    with ctx.db.session() as session:
        issue = session.scalar(
            select(Issue).where(Issue.number == number, Issue.published_at.is_not(None))
        )
        if issue is None:
            raise NotFoundError(
                f"issue {number} is not in the archive yet: issues appear here once they "
                "have been sent, so the web version of a test send or a preview opens after "
                "the real send"
            )
        content = issue_content(issue, session=session)
    html = render_web_version(content, theme=ctx.settings)
    csp = WEB_VERSION_CSP.format(images=email_image_sources(ctx.settings.base_url))
    headers = {"content-security-policy": csp, "cache-control": CACHE}
    return HTMLResponse(html, headers=headers)
