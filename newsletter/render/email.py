"""Issue -> ``RenderedEmail``: Jinja fills the MJML, mjml-python compiles it, once per segment.

MJML compilation is the expensive step (milliseconds), so a ``Renderer``
caches each result under (content hash, selected sections, theme).  Two
segments that select the same sections share one compilation, and nothing
per recipient is ever rendered: names and URLs are ``%%placeholders%%`` that
``newsletter.message.Template.fill`` joins in per recipient.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from mjml import mjml2html

from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.message import RenderedEmail, check_header_value, placeholder
from newsletter.render.content import IssueContent
from newsletter.render.segments import Segment, select_sections
from newsletter.render.templates import render_template
from newsletter.render.text import render_text
from newsletter.render.theme import Theme

T = TypeVar("T")
EMAIL_LINKS = {
    name: placeholder(name, html=True) for name in ("web_url", "preferences_url", "unsubscribe_url")
}


def as_theme(value: Theme | Settings) -> Theme:
    return value if isinstance(value, Theme) else Theme.from_settings(value)


def list_headers(theme: Theme) -> dict[str, str]:
    """RFC 2369/8058 one-click unsubscribe and an RFC 2919 List-Id."""
    name = theme.organisation
    if any(ch in name for ch in '()<>[]:;@\\,."'):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    headers = {
        "List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{name} <{theme.list_id}>",
    }
    for key, value in headers.items():
        check_header_value(key, value)
    return headers


# Between table rows and cells, after a table and at the start of its body, whitespace
# renders as nothing (MJML's own JavaScript compiler indents there); mjml-python writes
# whole sections as one line of 30 KB.
_ROW_ENDS = re.compile(r"(</tr>|</td>|</table>|<tbody>|<tr>)(?!\n)")


def compile_mjml(source: str) -> str:
    """MJML to HTML, a line per table row; a compiler complaint becomes a ``RenderError``.

    Short lines are what quoted-printable breaks least: a line with a
    per-recipient value in it is re-broken for each recipient, so the lines
    with links are kept to a row each instead of a section each.
    """
    try:
        html = mjml2html(source, disable_comments=True)
    except Exception as exc:  # mrml raises its own exception types
        raise RenderError(f"MJML did not compile: {exc}") from None
    return _ROW_ENDS.sub("\\1\n", html)


def _mjml_source(issue: IssueContent, theme: Theme, *, web: bool) -> str:
    links = {"subscribe_url": theme.subscribe_url} if web else EMAIL_LINKS
    return render_template(
        "issue.mjml.j2",
        theme.template_dir,
        issue=issue,
        theme=theme,
        web=web,
        links=links,
        month=issue.issue_date.strftime("%B %Y"),
    )


@dataclass
class RenderStats:
    compilations: int = 0  # MJML compilations actually run
    hits: int = 0  # answers served from the cache


class Renderer:
    """A bounded, thread-safe render cache; one per process is plenty."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self.stats = RenderStats()
        self._cache: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats.hits += 1
                return self._cache[key]  # type: ignore[return-value]
        value = build()
        with self._lock:
            self.stats.compilations += 1
            self._cache[key] = value
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return value

    def render(self, issue: IssueContent, segment: Segment, theme: Theme) -> RenderedEmail:
        sections = select_sections(issue, segment)
        key = ("email", issue.content_hash, sections, theme)
        return self._cached(key, lambda: self._build(issue.with_sections(sections), theme))

    def _build(self, view: IssueContent, theme: Theme) -> RenderedEmail:
        return RenderedEmail(
            subject=view.subject,
            html=compile_mjml(_mjml_source(view, theme, web=False)),
            text=render_text(view, theme),
            headers=list_headers(theme),
        )

    def web_version(self, issue: IssueContent, theme: Theme) -> str:
        key = ("web", issue.content_hash, theme)
        return self._cached(key, lambda: compile_mjml(_mjml_source(issue, theme, web=True)))

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self.stats = RenderStats()


default_renderer = Renderer()


def render_issue(
    issue: IssueContent,
    segment: Segment = None,
    *,
    theme: Theme | Settings,
    renderer: Renderer | None = None,
) -> RenderedEmail:
    """The email for one segment (``None``: everyone), with per-recipient placeholders.

    Cached: call it once per segment and fill per recipient with
    ``Template.compile(rendered).fill(values)``.
    """
    return (renderer or default_renderer).render(issue, segment, as_theme(theme))


def render_web_version(
    issue: IssueContent, *, theme: Theme | Settings, renderer: Renderer | None = None
) -> str:
    """The whole issue as a standalone HTML page for the archive (no per-recipient links)."""
    return (renderer or default_renderer).web_version(issue, as_theme(theme))
