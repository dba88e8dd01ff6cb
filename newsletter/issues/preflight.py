"""Pre-send checks on a rendered email: everything that would embarrass us in an inbox.

Run by ``newsletter issue preflight`` and before every send (``check_or_raise``).
It inspects the *rendered* email (placeholders still in), so it checks exactly
what goes out, whatever template or theme produced it.  The default templates
mark their structure with classes this module looks for: ``nl-section`` around
each section, ``nl-item`` on each card, ``postal-address`` on the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from newsletter.errors import PreflightError
from newsletter.message import FIELDS, RenderedEmail, Template

GMAIL_CLIP_BYTES = 102_000  # Gmail hides everything after ~102 KB behind "[Message clipped]"
SUBJECT_MAX = 150
SUBJECT_WARN = 78  # longer subjects are cut off in most inbox lists
# What a per-recipient URL may grow to once filled, for the size check.
SAMPLE_VALUES = {name: "x" * 160 for name in FIELDS}
_PLACEHOLDER_ONLY = re.compile(r"^%%[a-z_]+(:html)?%%$")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


@dataclass
class _Open:
    tag: str
    section: bool = False
    items: int = 0
    address: bool = False


class _Scan(HTMLParser):
    """One pass over the HTML collecting links, images and the structural markers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.images: list[tuple[str, str]] = []  # (src, alt)
        self.section_items: list[int] = []  # items per closed section
        self.item_total = 0
        self.address_text: list[str] = []
        self.stack: list[_Open] = []
        self.anchor: list[str] | None = None
        self.href = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = set(values.get("class", "").split())
        if tag == "img":
            self.images.append((values.get("src", ""), values.get("alt", "").strip()))
        if tag == "a" and "href" in values:
            self.anchor, self.href = [], values["href"].strip()
        if "nl-item" in classes:
            self.item_total += 1
            for entry in reversed(self.stack):
                if entry.section:
                    entry.items += 1
                    break
        if tag not in VOID:
            entry = _Open(tag, "nl-section" in classes, 0, "postal-address" in classes)
            self.stack.append(entry)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.anchor is not None:
            self.links.append((self.href, " ".join("".join(self.anchor).split())))
            self.anchor = None
        while self.stack:
            entry = self.stack.pop()
            if entry.section:
                self.section_items.append(entry.items)
            if entry.tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.anchor is not None:
            self.anchor.append(data)
        if any(entry.address for entry in self.stack):
            self.address_text.append(data)


def _scan(html: str) -> _Scan:
    scan = _Scan()
    scan.feed(html)
    scan.close()
    scan.handle_endtag("")  # close whatever is left open
    return scan


def _link_problem(href: str) -> str | None:
    if _PLACEHOLDER_ONLY.match(href) or href.startswith("mailto:"):
        return None
    if re.match(r"^https?://[^/\s]+", href, re.IGNORECASE):
        return None
    return f"link {href!r} is not an absolute http(s) URL"


def _link_checks(scan: _Scan) -> list[str]:
    problems = [p for href, _ in scan.links if (p := _link_problem(href))]
    for src, alt in scan.images:
        if not alt:
            problems.append(f"image {src or '(no src)'!r} has no alt text")
        if not re.match(r"^https?://[^/\s]+", src, re.IGNORECASE):
            problems.append(f"image {src or '(no src)'!r} is not an absolute http(s) URL")
    return problems


def _has_unsubscribe(scan: _Scan) -> bool:
    return any(
        "%%unsubscribe_url" in href or "unsubscribe" in text.casefold() for href, text in scan.links
    )


def _footer_checks(scan: _Scan, rendered: RenderedEmail) -> list[str]:
    problems = []
    if not _has_unsubscribe(scan):
        problems.append("no unsubscribe link in the HTML part")
    if "unsubscribe" not in rendered.text.casefold():
        problems.append("no unsubscribe link in the text part")
    if "List-Unsubscribe" not in rendered.headers:
        problems.append("no List-Unsubscribe header")
    if not "".join(scan.address_text).strip():
        problems.append("no postal address in the footer (class 'postal-address')")
    return problems


def _structure_checks(scan: _Scan) -> list[str]:
    problems = []
    if scan.item_total == 0:
        problems.append("the issue has no items")
    empty = sum(1 for count in scan.section_items if count == 0)
    if empty:
        problems.append(f"{empty} empty section(s): every section needs at least one item")
    return problems


def _size_problem(rendered: RenderedEmail) -> str | None:
    filled = Template.compile(rendered).fill(SAMPLE_VALUES).html
    size = len(filled.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        return f"HTML is {size:,} bytes; Gmail clips messages over {GMAIL_CLIP_BYTES:,} bytes"
    return None


def _subject_problem(subject: str) -> str | None:
    length = len(subject.strip())
    if not 1 <= length <= SUBJECT_MAX:
        return f"subject is {length} characters (must be 1..{SUBJECT_MAX})"
    return None


@dataclass
class PreflightReport:
    problems: list[str]  # any of these blocks a send
    warnings: list[str]  # worth a look, never blocking

    @property
    def ok(self) -> bool:
        return not self.problems


def inspect(rendered: RenderedEmail) -> PreflightReport:
    """Every problem and warning for one rendered email."""
    scan = _scan(rendered.html)
    problems = [p for p in (_size_problem(rendered), _subject_problem(rendered.subject)) if p]
    problems += _link_checks(scan) + _footer_checks(scan, rendered) + _structure_checks(scan)
    warnings = []
    if len(rendered.subject.strip()) > SUBJECT_WARN:
        warnings.append(f"subject is over {SUBJECT_WARN} characters; inboxes will cut it off")
    return PreflightReport(list(dict.fromkeys(problems)), warnings)


def preflight(rendered: RenderedEmail) -> list[str]:
    """The blocking problems (empty list: good to send)."""
    return inspect(rendered).problems


def check_or_raise(rendered: RenderedEmail) -> list[str]:
    """Raise ``PreflightError`` listing every problem; return the warnings otherwise."""
    report = inspect(rendered)
    if report.problems:
        raise PreflightError(report.problems)
    return report.warnings
