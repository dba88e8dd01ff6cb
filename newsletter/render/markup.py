"""Editor markup: Markdown to sanitised HTML, URL checks, and HTML to plain text.

Everything an editor types (intro, blurbs, article bodies) is untrusted: it is
rendered by markdown-it (raw HTML allowed, because editors paste it) and then
cleaned by nh3 with a small allow-list, so ``<script>``, ``on*=`` handlers and
``javascript:`` URLs can never reach an inbox or the web archive.  Validation
(``bad_urls``) runs on the *unsanitised* parse so editors get an error naming
the bad URL instead of a silently vanished link.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {"p", "br", "strong", "b", "em", "i", "u", "s", "a", "ul", "ol", "li", "blockquote",
     "code", "pre", "h3", "h4", "img", "hr"}
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def _cleaner(link_color: str) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(LINK_SCHEMES),
        url_relative="deny",
        link_rel="noopener",
        set_tag_attribute_values={
            "a": {"style": f"color:{link_color};text-decoration:underline", "target": "_blank"},
            "img": {"style": "max-width:100%;height:auto;border:0"},
            "p": {"style": "margin:0 0 14px"},
        },
    )


@lru_cache(maxsize=8)
def _cached_cleaner(link_color: str) -> nh3.Cleaner:
    return _cleaner(link_color)


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("strikethrough")


@lru_cache(maxsize=1)
def _permissive_renderer() -> MarkdownIt:
    """Like ``_renderer`` but keeps every link as a token, so validation sees bad URLs."""
    md = MarkdownIt("commonmark", {"html": True}).enable("strikethrough")
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def sanitize_html(html: str, *, link_color: str = "#0d4a6b") -> str:
    """Editor HTML reduced to the allow-list; links only http(s)/mailto, images only absolute."""
    return str(_cached_cleaner(link_color).clean(html))


def markdown_to_html(source: str, *, link_color: str = "#0d4a6b") -> str:
    """Untrusted Markdown (with inline HTML) to safe HTML."""
    if not source.strip():
        return ""
    return sanitize_html(_renderer().render(source), link_color=link_color)


def escape_markdown(text: str) -> str:
    """Plain text (a resource summary) made literal inside Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# --- URL validation ------------------------------------------------------------


class _UrlCollector(HTMLParser):
    """Collects (kind, url) for every link and image in an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href") is not None:
            self.found.append(("link", values["href"] or ""))
        elif tag == "img":
            self.found.append(("image", values.get("src") or ""))


def url_problem(url: str, *, kind: str) -> str | None:
    """Why ``url`` cannot be used for a link or image, or ``None`` if it is fine."""
    allowed = IMAGE_SCHEMES if kind == "image" else LINK_SCHEMES
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return f"malformed {kind} URL {text!r}"
    scheme = parts.scheme.lower()
    if not scheme:
        return f"relative {kind} URL {text!r} (use an absolute https:// URL)"
    if scheme not in allowed:
        return f"{kind} URL {text!r} uses {scheme}: (only {', '.join(sorted(allowed))})"
    if scheme != "mailto" and not parts.netloc:
        return f"{kind} URL {text!r} has no host"
    return None


def bad_urls(source: str) -> list[str]:
    """Problems with the links and images in editor Markdown (before sanitising)."""
    collector = _UrlCollector()
    collector.feed(_permissive_renderer().render(source))
    collector.close()
    problems = (url_problem(url, kind=kind) for kind, url in collector.found)
    return [p for p in problems if p]


# --- plain text ----------------------------------------------------------------

WIDTH = 72


@dataclass
class LinkRefs:
    """Numbered link references shared by a whole text part: ``[1] https://...``."""

    urls: list[str] = field(default_factory=list)

    def number(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1

    def render(self) -> str:
        return "\n".join(f"[{i}] {url}" for i, url in enumerate(self.urls, 1))


_BULLET = re.compile(r"^(- |\d+\. )")
_BLOCKS = {"p", "ul", "ol", "blockquote", "pre", "h3", "h4", "hr", "li"}


class _TextMaker(HTMLParser):
    """Sanitised HTML to readable text: paragraphs, bullets, ``text [n]`` links."""

    def __init__(self, refs: LinkRefs) -> None:
        super().__init__(convert_charrefs=True)
        self.refs = refs
        self.blocks: list[str] = []
        self.current: list[str] = []
        self.href: list[str | None] = []
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets

    def _flush(self) -> None:
        text = " ".join("".join(self.current).split())
        if text:
            self.blocks.append(text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in _BLOCKS:
            self._flush()
        if tag in ("ul", "ol"):
            self.lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self.current.append(self._bullet())
        elif tag == "br":
            self.current.append(" ")
        elif tag == "a":
            self.href.append(values.get("href"))
        elif tag == "img" and values.get("alt"):
            self.current.append(f"[{values['alt']}]")

    def _bullet(self) -> str:
        if not self.lists or not self.lists[-1]:
            return "- "
        number = self.lists[-1][0]
        self.lists[-1][0] += 1
        return f"{number}. "

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.href:
            href = self.href.pop()
            if href:
                self.current.append(f" [{self.refs.number(href)}]")
        if tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        self.current.append(data)


def wrap(text: str, *, indent: str = "", width: int = WIDTH) -> str:
    """Wrap one paragraph; URLs and placeholders are never broken."""
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=" " * len(indent),
        break_long_words=False,
        break_on_hyphens=False,
    )


def html_to_text(html: str, refs: LinkRefs) -> str:
    """Sanitised HTML as wrapped paragraphs; list items keep a hanging indent."""
    maker = _TextMaker(refs)
    maker.feed(html)
    maker.close()
    maker._flush()
    out: list[str] = []
    previous_bullet = False
    for block in maker.blocks:
        bullet = _BULLET.match(block)
        if out:
            out.append("\n" if bullet and previous_bullet else "\n\n")
        if bullet:
            out.append(wrap(block[bullet.end() :], indent=bullet.group(1)))
        else:
            out.append(wrap(block))
        previous_bullet = bullet is not None
    return "".join(out)


def markdown_to_text(source: str, refs: LinkRefs) -> str:
    """Editor Markdown as plain text, through the same sanitiser as the HTML part."""
    return html_to_text(markdown_to_html(source), refs)
