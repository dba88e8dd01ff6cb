"""Pure, cached rendering of an issue into an email (HTML + text + headers) and a web page.

Input is plain data (``IssueContent``); there is no database access here.
"""

from newsletter.render.content import ImageContent, IssueContent, ItemContent, SectionContent
from newsletter.render.email import (
    Renderer,
    default_renderer,
    list_headers,
    render_issue,
    render_web_version,
)
from newsletter.render.segments import Segment, select_sections
from newsletter.render.theme import Theme

__all__ = [
    "ImageContent",
    "IssueContent",
    "ItemContent",
    "Renderer",
    "SectionContent",
    "Segment",
    "Theme",
    "default_renderer",
    "list_headers",
    "render_issue",
    "render_web_version",
    "select_sections",
]
