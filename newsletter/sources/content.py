"""What a source's answer holds: its kind (feed, listing page, sitemap) and its records.

Feeds and listing pages go through the library's own importers
(``parsers.parse_feed`` and the listing-page parser ``parsers.parse_text``), so
a polled item becomes exactly the record an imported file would have given.
Sitemaps have no titles: each URL's last path segment stands in for one until
an editor accepts it and fixes it.  Nothing here touches the network or the
database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from newsletter.errors import ImportFormatError
from newsletter.models.sources import SourceKind
from newsletter.resources import parsers
from newsletter.resources.records import ParseResult, ResourceRecord

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
SITEMAP_MAX_URLS = 1000  # a poll reads at most this many; the newest are listed first by most CMSs
_ROOT = re.compile(rb"<\s*([A-Za-z_][\w.:-]*)")
_SKIPPED = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", re.DOTALL | re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _root_element(body: bytes) -> str | None:
    head = _SKIPPED.sub(b"", body.removeprefix(b"\xef\xbb\xbf")[:4096]).lstrip()
    found = _ROOT.match(head)
    return found.group(1).decode("ascii", "replace").rpartition(":")[2] if found else None


def detect_kind(body: bytes, content_type: str) -> SourceKind:
    """Feed or sitemap by the XML root element; anything else is a listing page."""
    root = _root_element(body) if body.lstrip().startswith((b"<", b"\xef\xbb\xbf")) else None
    if root in ("rss", "feed", "RDF"):
        return SourceKind.FEED
    if root in ("urlset", "sitemapindex"):
        return SourceKind.SITEMAP
    if content_type in ("application/rss+xml", "application/atom+xml") or (
        root is not None and root != "html" and "xml" in content_type
    ):
        return SourceKind.FEED  # parse_feed says clearly why this XML is not a feed
    return SourceKind.LISTING


def parse(kind: str, body: bytes, *, name: str, content_type: str = "") -> ParseResult:
    """All of the answer's records, or ``ImportFormatError`` (one line) when it is garbage."""
    if not body.strip():
        raise ImportFormatError("the answer is empty", where=name)
    text = parsers.decode_utf8(body, name=name)
    if kind == SourceKind.FEED:
        return parsers.parse_feed(text, name=name)
    if kind == SourceKind.SITEMAP:
        return parse_sitemap(text, name=name)
    looks_html = content_type in _HTML_TYPES or _root_element(body) == "html"
    return parsers.parse_text(parsers.html_to_text(text) if looks_html else text, name=name)


def _title_from_url(url: str) -> str:
    """ "/resources/designing-for-equity/" -> "Designing for equity"."""
    parts = urlsplit(url)
    segment = next((s for s in reversed(parts.path.split("/")) if s), "") or parts.hostname or url
    words = re.sub(r"\.[a-z0-9]{1,5}$", "", unquote(segment), flags=re.IGNORECASE)
    words = " ".join(re.split(r"[-_+\s]+", words)).strip()
    return (words[:1].upper() + words[1:])[:500] or url[:500]


def _lastmod(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        stamp = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def parse_sitemap(text: str, *, name: str) -> ParseResult:
    """The ``<url><loc>`` entries of a sitemap (a sitemap index is refused with a hint)."""
    if "<!ENTITY" in text:
        raise ImportFormatError("XML entity declarations are not allowed", where=name)
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ImportFormatError(f"not well-formed XML: {exc}", where=name) from None
    if root.tag == f"{SITEMAP_NS}sitemapindex":
        raise ImportFormatError(
            "this is a sitemap index: add each of its sitemaps as a source", where=name
        )
    if root.tag != f"{SITEMAP_NS}urlset":
        raise ImportFormatError(f"XML root element <{root.tag}> is not a sitemap", where=name)
    records = []
    for number, entry in enumerate(root.iter(f"{SITEMAP_NS}url"), start=1):
        if number > SITEMAP_MAX_URLS:
            break
        loc = (entry.findtext(f"{SITEMAP_NS}loc") or "").strip()
        if not re.match(r"^https?://", loc, re.IGNORECASE):
            continue
        record = ResourceRecord(
            title=_title_from_url(loc), url=loc,
            published=_lastmod(entry.findtext(f"{SITEMAP_NS}lastmod")), origin=f"{name}#{number}",
        )  # fmt: skip
        parsers.check_storable(record)
        records.append(record)
    return ParseResult(records, [])
