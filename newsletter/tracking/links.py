"""Which links a rendered email has, and the same email with each one tracked.

Pure functions over the *rendered* HTML and text (placeholders still in), so
they work whatever the template: every ``<a href>`` in the body becomes
``%%link_N:html%%`` (filled per recipient with ``{base_url}/r/{token}``, or
with the original URL for a reader who turned tracking off), and an
``%%open_pixel%%`` goes before ``</body>``.  The unsubscribe and preferences
links, ``mailto:``/``tel:`` and in-page anchors are never touched.

A link is known by its ``LinkKey``: the issue section it sits in (the
template marks sections with the ``nl-section`` class), its URL, and which
occurrence of that URL in that section it is.  A segment's email shows a
subset of the sections, and its links still get the positions the whole
issue's email gave them, so one ``issue_links`` table serves every segment.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from html.parser import HTMLParser

from newsletter.message import OPEN_PIXEL, RenderedEmail, link_field, placeholder
from newsletter.render.content import IssueContent

NEVER_TRACKED = (
    placeholder("unsubscribe_url", html=True),
    placeholder("preferences_url", html=True),
    placeholder("unsubscribe_url"),
    placeholder("preferences_url"),
)
_SECTION_CLASS = "nl-section"
_HREF = re.compile(r"""\bhref\s*=\s*("([^"]*)"|'([^']*)')""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LinkKey:
    section: int | None  # index into the whole issue's sections; None: header, intro, footer
    url: str
    occurrence: int  # 0 for the first link to ``url`` in that section


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One link of the whole issue, as ``issue_links`` stores it."""

    position: int  # 1-based, in the order of the whole issue's email
    key: LinkKey
    section_heading: str | None
    resource_id: int | None


@dataclass(frozen=True, slots=True)
class _Anchor:
    start: int  # offsets of the href value in the HTML
    end: int
    key: LinkKey


class _Scanner(HTMLParser):
    """Anchors with the section they sit in; offsets from the parser's line/column."""

    def __init__(self, html: str, sections: Sequence[int], resolve: Mapping[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.source = html
        self.line_starts = [0]
        for match in re.finditer("\n", html):
            self.line_starts.append(match.end())
        self.sections, self.resolve = list(sections), resolve
        self.stack: list[tuple[str, int | None]] = []  # (tag, section index opened by it)
        self.seen_sections = 0
        self.counts: dict[tuple[int | None, str], int] = {}
        self.anchors: list[_Anchor] = []

    def _section(self) -> int | None:
        for _tag, section in reversed(self.stack):
            if section is not None:
                return section
        return None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        opened = None
        if _SECTION_CLASS in values.get("class", "").split():
            index = self.seen_sections
            self.seen_sections += 1
            opened = self.sections[index] if index < len(self.sections) else None
        if tag == "a":
            self._anchor()
        if tag not in VOID:
            self.stack.append((tag, opened))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._anchor()

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return

    def _anchor(self) -> None:
        line, column = self.getpos()
        offset = self.line_starts[line - 1] + column
        text = self.get_starttag_text() or ""
        found = _HREF.search(text)
        if found is None:
            return
        group = 2 if found.group(2) is not None else 3
        start, end = offset + found.start(group), offset + found.end(group)
        raw = htmllib.unescape(self.source[start:end]).strip()
        url = self.resolve.get(raw, raw)
        if not trackable(raw, url):
            return
        section = self._section()
        count = self.counts.get((section, url), 0)
        self.counts[(section, url)] = count + 1
        self.anchors.append(_Anchor(start, end, LinkKey(section, url, count)))


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


def trackable(raw: str, url: str) -> bool:
    """Only web links readers follow; never the ways out, never mail or phone links."""
    if raw in NEVER_TRACKED:
        return False
    return url.lower().startswith(("http://", "https://"))


def _anchors(html: str, sections: Sequence[int], resolve: Mapping[str, str]) -> list[_Anchor]:
    scanner = _Scanner(html, sections, resolve)
    scanner.feed(html)
    scanner.close()
    return scanner.anchors


def issue_links(
    full: RenderedEmail, issue: IssueContent, *, resolve: Mapping[str, str]
) -> list[LinkSpec]:
    """Every tracked link of the whole issue's email (``full``: rendered for everyone)."""
    resources: dict[str, int] = {}
    for item in issue.items:
        for url in (item.url, item.cta_url):
            if url and item.resource_id is not None:
                resources.setdefault(url, item.resource_id)
    specs = []
    everything = range(len(issue.sections))
    for position, anchor in enumerate(_anchors(full.html, everything, resolve), start=1):
        section = anchor.key.section
        heading = issue.sections[section].heading if section is not None else None
        specs.append(LinkSpec(position, anchor.key, heading, resources.get(anchor.key.url)))
    return specs


def track(
    rendered: RenderedEmail,
    *,
    sections: Sequence[int],
    positions: Mapping[LinkKey, int],
    resolve: Mapping[str, str],
    pixel: bool = True,
) -> RenderedEmail:
    """``rendered`` with its links as ``%%link_N%%`` placeholders (and the open pixel).

    ``sections``: which of the issue's sections this email shows, in order;
    ``positions``: each link's position in the whole issue (``issue_links``).
    A link the whole issue does not have (it cannot happen with one template)
    is left as it is.
    """
    html = rendered.html
    out: list[str] = []
    last = 0
    by_url: dict[str, int] = {}
    for anchor in _anchors(html, sections, resolve):
        position = positions.get(anchor.key)
        if position is None:
            continue
        by_url.setdefault(anchor.key.url, position)
        out.append(html[last : anchor.start])
        out.append(placeholder(link_field(position), html=True))
        last = anchor.end
    out.append(html[last:])
    tracked_html = "".join(out)
    if pixel:
        tracked_html = _with_pixel(tracked_html)
    return replace(rendered, html=tracked_html, text=_track_text(rendered.text, by_url, resolve))


def _with_pixel(html: str) -> str:
    marker = placeholder(OPEN_PIXEL)
    at = html.lower().rfind("</body>")
    return html[:at] + marker + html[at:] if at >= 0 else html + marker


def _track_text(text: str, by_url: Mapping[str, int], resolve: Mapping[str, str]) -> str:
    """The plain-text part's links, each as the tracked link of its first HTML anchor."""
    raw_of = {url: raw for raw, url in resolve.items()}
    for url, position in sorted(by_url.items(), key=lambda pair: -len(pair[0])):
        spelled = raw_of.get(url, url)
        if spelled in resolve:  # a placeholder (the web version): the text writes it raw
            spelled = spelled.replace(":html%%", "%%")
        pattern = re.compile(re.escape(spelled) + r"(?=$|[\s)\]>\"'<])", re.MULTILINE)
        text = pattern.sub(placeholder(link_field(position)), text)
    return text
