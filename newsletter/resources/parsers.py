"""Parse resource files (RSS/Atom, CSV, JSON, plain-text pages) into ``ResourceRecord``s.

Every parser is all-or-nothing: a file either yields all of its records or raises
``ImportFormatError`` with one line saying where and what is wrong.  Partial
imports would leave an editor unsure which resources made it in.  Things that
are skipped on purpose (a summary with no title, a dangling sentence) are
reported as ``ImportWarning``s instead.

Nothing here touches the database, the network or the clock.
"""

from __future__ import annotations

import calendar
import csv
import functools
import html
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ParamSpec
from xml.parsers import expat

import feedparser

from newsletter.csvfiles import csv_error_message
from newsletter.errors import ImportFormatError
from newsletter.resources.classify import (
    RESOURCE_TYPES,
    normalise_title,
    normalise_type,
    normalise_url,
)
from newsletter.resources.records import (
    MAX_LENGTHS,
    TOPIC_MAX_LENGTH,
    ImportWarning,
    ParseResult,
    ResourceRecord,
)

__all__ = [
    "detect_format",
    "html_to_text",
    "parse_csv",
    "parse_feed",
    "parse_file",
    "parse_json",
    "parse_text",
    "split_truncation",
]

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".xml": "feed",
    ".rss": "feed",
    ".atom": "feed",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".markdown": "text",
}

P = ParamSpec("P")

# =========================================================================== storable records


def _check_text(field: str, text: str, where: str) -> None:
    if "\x00" in text:
        raise ImportFormatError(f"{field} contains a NUL character", where=where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800" escape
        raise ImportFormatError(f"{field} is not valid Unicode text", where=where) from None


def check_storable(record: ResourceRecord) -> None:
    """Refuse what the library could not store: NUL, lone surrogates, over-long fields.

    Without this a database error would abort the import mid-way with a
    traceback instead of one line naming the file and record.
    """
    where = record.origin
    for key in ("title", "summary", *MAX_LENGTHS):
        value = getattr(record, key, None)
        if isinstance(value, str):
            _check_text(key, value, where)
    for topic in record.topics:
        _check_text("topic", topic, where)
        if len(topic) > TOPIC_MAX_LENGTH:
            message = f"topic is longer than {TOPIC_MAX_LENGTH} characters"
            raise ImportFormatError(message, where=where)
    # The dedupe keys are stored too, and normalising can lengthen text (NFKC: "ﷺ").
    keys = {"title": normalise_title(record.title), "url": normalise_url(record.url or "")}
    for key, limit in MAX_LENGTHS.items():
        value = getattr(record, key) or ""
        if max(len(value), len(keys.get(key, ""))) > limit:
            raise ImportFormatError(f"{key} is longer than {limit} characters", where=where)


def _storable(parse: Callable[P, ParseResult]) -> Callable[P, ParseResult]:
    """A parser whose every record passes ``check_storable`` (all-or-nothing still holds)."""

    @functools.wraps(parse)
    def checked(*args: P.args, **kwargs: P.kwargs) -> ParseResult:
        result = parse(*args, **kwargs)
        for record in result.records:
            check_storable(record)
        return result

    return checked


# =========================================================================== entry points


def parse_file(path: Path) -> ParseResult:
    """Read ``path`` strictly as UTF-8 (a BOM is fine) and parse it in the detected format."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"cannot read file: {exc.strerror or exc}", where=name) from exc
    if not data.strip():
        raise ImportFormatError("file is empty", where=name)
    fmt = _EXTENSIONS.get(path.suffix.casefold())
    if fmt is None:
        fmt = _sniff_format(data, path)
    return _PARSERS[fmt](decode_utf8(data, name=name), name=name)


def detect_format(path: Path, text: str) -> str:
    """Return "csv", "json", "feed" or "text" from the extension, else from the content."""
    fmt = _EXTENSIONS.get(path.suffix.casefold())
    return fmt or _sniff_format(text.encode("utf-8", "replace"), path)


def _sniff_format(data: bytes, path: Path) -> str:
    """Recognise XML feeds and JSON by their first character; nothing else is guessed."""
    head = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    if head == b"<":
        return "feed"
    if head in (b"[", b"{"):
        return "json"
    raise ImportFormatError(
        f"unknown format (extension {path.suffix or '(none)'!r}; expected .csv, .json, "
        ".xml/.rss/.atom, .txt/.md, or RSS/Atom/JSON content)",
        where=str(path),
    )


def decode_utf8(data: bytes, *, name: str) -> str:
    """Decode strictly: mojibake in a newsletter is worse than a clear error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFormatError(
            f"not valid UTF-8 at byte {exc.start} (0x{data[exc.start]:02x}); "
            "save the file as UTF-8",
            where=f"{name}:{line}",
        ) from None


def _prepare(text: str, name: str) -> str:
    """Drop a BOM and refuse blank input (shared by every ``parse_*``)."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ImportFormatError("file is empty", where=name)
    return text


def _at(name: str, line: int) -> str:
    return f"{name}:{line}"


# =========================================================================== shared text helpers

_ZERO_WIDTH = str.maketrans({"\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None})


def clean_inline(text: str) -> str:
    """Collapse all whitespace (NBSP, tabs, newlines) to single spaces; drop zero-width chars."""
    return " ".join(text.translate(_ZERO_WIDTH).split())


def _clean_paragraphs(text: str) -> str:
    """Keep blank-line paragraph breaks, collapse whitespace inside each paragraph."""
    paragraphs = (clean_inline(p) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


_ELLIPSIS = r"(?:…|\.\.\.|\[\s*(?:…|\.\.\.)\s*\])"
_MORE_MARKER_RE = re.compile(
    rf"\s*(?P<ellipsis>{_ELLIPSIS})?\s*"
    r"(?:read\s+more|continue\s+reading|keep\s+reading|read\s+the\s+rest)\s*[›»>→]*\s*$",
    re.IGNORECASE,
)
_ELLIPSIS_END_RE = re.compile(rf"\s*{_ELLIPSIS}\s*$")


def split_truncation(summary: str) -> tuple[str, bool]:
    """Strip a "… Read More ›" marker; report whether the summary was cut off.

    The ellipsis stays (normalised to "…") so a reader sees the text is partial;
    the "Read More" link text goes, because the link itself did not survive.
    """
    marker = _MORE_MARKER_RE.search(summary)
    if marker:
        kept = summary[: marker.start()].rstrip()
        return (kept + "…" if marker.group("ellipsis") else kept), True
    ellipsis = _ELLIPSIS_END_RE.search(summary)
    if ellipsis:
        return summary[: ellipsis.start()].rstrip() + "…", True
    return summary, False


def _summary_fields(text: str) -> tuple[str, bool]:
    return split_truncation(_clean_paragraphs(text))


_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "pre",
        "hr",
        "dd",
        "dt",
        "figure",
        "figcaption",
    }
)


class _HtmlText(HTMLParser):
    """Collects text by block (paragraphs) and the ``<img>`` tags seen, ignoring scripts/styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[str]] = [[]]
        self.images: list[tuple[str, str]] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag == "br":
            self.blocks[-1].append(" ")
        elif tag == "img":
            found = dict(attrs)
            self.images.append((found.get("src") or "", found.get("alt") or ""))
        elif tag in _BLOCK_TAGS:
            self.blocks.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.blocks[-1].append(data)

    def paragraphs(self) -> list[str]:
        texts = (clean_inline("".join(block)) for block in self.blocks)
        return [t for t in texts if t]


def _read_html(markup: str) -> _HtmlText:
    """Parse an HTML fragment; on markup that trips the stdlib parser, fall back to tag-stripping.

    ``HTMLParser`` raises AssertionError on some broken declarations (``<![<``);
    a feed from the wild must not be able to crash an import that way.
    """
    reader = _HtmlText()
    try:
        reader.feed(markup)
        reader.close()
    except AssertionError:
        reader = _HtmlText()
        stripped = re.sub(r"<\S*", " ", re.sub(r"<[^<>]*>", " ", markup))
        reader.handle_data(html.unescape(stripped))
    return reader


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: block elements become blank-line-separated paragraphs."""
    return "\n\n".join(_read_html(markup).paragraphs())


# =========================================================================== field conversion

_URL_SCHEMES = ("http", "https")


def _checked_url(raw: str, where: str, what: str = "URL") -> str | None:
    """Accept only absolute http(s) URLs: anything else cannot be linked from an email."""
    url = raw.strip()
    if not url:
        return None
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.casefold() not in _URL_SCHEMES or not rest.startswith("//"):
        raise ImportFormatError(f"{what} is not an absolute http(s) URL: {url[:80]!r}", where=where)
    return url


_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y/%m/%d", "%d/%m/%Y")


def _parse_date(raw: str, where: str) -> datetime | None:
    """ISO 8601, RFC 2822, or "April 19, 2018"; naive values are taken as UTC."""
    text = raw.strip()
    if not text:
        return None
    for attempt in (datetime.fromisoformat, parsedate_to_datetime, *map(_strptime, _DATE_FORMATS)):
        try:
            value = attempt(text)
        except (ValueError, TypeError, IndexError, OverflowError):
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise ImportFormatError(f"unrecognised date {text[:40]!r} (use YYYY-MM-DD)", where=where)


def _strptime(fmt: str) -> Callable[[str], datetime]:
    return lambda text: datetime.strptime(text, fmt)


def _split_topics(raw: str) -> tuple[str, ...]:
    """ "a; b" or "a, b": semicolons win so a topic may contain a comma when they are used."""
    parts = raw.split(";") if ";" in raw else raw.split(",")
    return tuple(clean_inline(p) for p in parts if p.strip())


def _checked_type(raw: str, where: str, warnings: list[ImportWarning]) -> str | None:
    """A type the source gave; unknown ones are dropped with a warning so inference can run."""
    if not raw.strip():
        return None
    kind = normalise_type(raw)
    if kind is None:
        warnings.append(ImportWarning(where, f"unknown type {raw.strip()!r} ignored (will infer)"))
    return kind


# =========================================================================== CSV and JSON

_FIELD_ALIASES: dict[str, str] = {
    **dict.fromkeys(("title", "name", "headline"), "title"),
    **dict.fromkeys(("summary", "description", "abstract", "blurb", "excerpt"), "summary"),
    **dict.fromkeys(("url", "link", "href", "resource_url"), "url"),
    **dict.fromkeys(("type", "resource_type", "kind"), "type"),
    **dict.fromkeys(("source", "organisation", "organization", "publisher", "org"), "source"),
    **dict.fromkeys(
        ("topics", "topic", "tags", "tag", "categories", "category", "keywords"), "topics"
    ),
    **dict.fromkeys(
        ("published", "date", "pub_date", "pubdate", "published_at", "publication_date"),
        "published",
    ),
    **dict.fromkeys(("authors", "author", "by", "byline"), "authors"),
    **dict.fromkeys(("image_url", "image", "thumbnail"), "image_url"),
    **dict.fromkeys(("image_alt", "alt", "alt_text"), "image_alt"),
    **dict.fromkeys(("image_credit", "photo_credit", "credit"), "image_credit"),
    **dict.fromkeys(("call_to_action", "cta"), "call_to_action"),
}


def _field_key(header: str) -> str:
    """ "Image URL", "image-url", " IMAGE_URL " all become "image_url"."""
    return re.sub(r"[\s-]+", "_", header.strip().casefold())


def _map_fields(keys: list[str], where: str) -> tuple[list[str | None], list[str]]:
    """Canonical field per key (None = ignored) and the unknown keys; duplicates are an error."""
    mapped: list[str | None] = []
    unknown: list[str] = []
    owner: dict[str, str] = {}
    for key in keys:
        canonical = _FIELD_ALIASES.get(_field_key(key))
        if canonical is None and key.strip():
            unknown.append(key.strip())
        if canonical in owner:
            raise ImportFormatError(
                f"{owner[canonical]!r} and {key!r} both give the {canonical}", where=where
            )
        if canonical:
            owner[canonical] = key
        mapped.append(canonical)
    return mapped, unknown


def _record_from_fields(
    values: Mapping[str, str], topics: tuple[str, ...], where: str, warnings: list[ImportWarning]
) -> ResourceRecord:
    """Build a record from canonical string fields (shared by CSV and JSON)."""
    title = clean_inline(values.get("title", ""))
    if not title:
        raise ImportFormatError("record has no title", where=where)
    summary, truncated = _summary_fields(values.get("summary", ""))
    return ResourceRecord(
        title=title,
        summary=summary,
        url=_checked_url(values.get("url", ""), where),
        type=_checked_type(values.get("type", ""), where, warnings),
        source=clean_inline(values.get("source", "")) or None,
        topics=topics,
        summary_truncated=truncated,
        published=_parse_date(values.get("published", ""), where),
        authors=clean_inline(values.get("authors", "")) or None,
        image_url=_checked_url(values.get("image_url", ""), where, "image URL"),
        image_alt=clean_inline(values.get("image_alt", "")) or None,
        image_credit=clean_inline(values.get("image_credit", "")) or None,
        call_to_action=clean_inline(values.get("call_to_action", "")) or None,
        origin=where,
    )


def _csv_dialect_delimiter(text: str) -> str:
    """Pick ",", ";" or tab from the header line (Excel in many locales writes ";")."""
    header = next((line for line in text.split("\n") if line.strip()), "")
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (start line, cells) for non-blank rows; csv.Error becomes ImportFormatError."""
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_csv_dialect_delimiter(text), strict=True
    )
    previous_end = 0
    try:
        for row in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if any(cell.strip() for cell in row):
                yield start, row
    except csv.Error as exc:
        where = _at(name, reader.line_num)
        raise ImportFormatError(csv_error_message(exc), where=where) from None


@_storable
def parse_csv(text: str, *, name: str) -> ParseResult:
    """Header-mapped CSV: column names are case-insensitive and have aliases (link → url, ...)."""
    rows = _csv_rows(_prepare(text, name), name)
    first = next(rows, None)
    if first is None:
        raise ImportFormatError("CSV has no header row", where=name)
    header_line, header = first
    columns, unknown = _map_fields(header, _at(name, header_line))
    if "title" not in columns:
        found = _excerpt(", ".join(h.strip() for h in header), 200)
        raise ImportFormatError(f"CSV has no 'title' column (found: {found})", where=name)
    warnings = _unknown_warning(unknown, "column", _at(name, header_line))
    records = [_csv_record(row, columns, _at(name, line), warnings) for line, row in rows]
    if not records:
        warnings.append(ImportWarning(_at(name, header_line), "CSV has a header but no rows"))
    return ParseResult(records, warnings)


def _csv_record(
    row: list[str], columns: list[str | None], where: str, warnings: list[ImportWarning]
) -> ResourceRecord:
    extra = row[len(columns) :]
    if any(cell.strip() for cell in extra):
        raise ImportFormatError(
            f"row has {len(row)} fields but the header has {len(columns)} "
            "(a comma inside an unquoted value?)",
            where=where,
        )
    values = {col: cell for col, cell in zip(columns, row, strict=False) if col}
    topics = _split_topics(values.pop("topics", ""))
    return _record_from_fields(values, topics, where, warnings)


def _unknown_warning(unknown: list[str], what: str, where: str) -> list[ImportWarning]:
    if not unknown:
        return []
    return [ImportWarning(where, f"ignored unknown {what}(s): {', '.join(unknown)}")]


@_storable
def parse_json(text: str, *, name: str) -> ParseResult:
    """A list of objects, or ``{"resources": [...]}``; keys use the same aliases as CSV columns."""
    text = _prepare(text, name)
    data = _load_json(text, name)
    items, array_start = _json_items(data, text, name)
    warnings: list[ImportWarning] = []
    unknown: dict[str, str] = {}
    records = []
    for index, (item, line) in enumerate(
        zip(items, _element_lines(text, array_start), strict=True)
    ):
        where = _at(name, line)
        if not isinstance(item, dict):
            raise ImportFormatError(
                f"resource #{index + 1} is {_json_kind(item)}, not an object", where=where
            )
        records.append(_json_record(item, where, warnings, unknown))
    warnings[:0] = [ImportWarning(w, f"ignored unknown field {k!r}") for k, w in unknown.items()]
    if not records:
        warnings.append(ImportWarning(_at(name, 1), "JSON has no resources"))
    return ParseResult(records, warnings)


def _load_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = _at(name, exc.lineno)
        raise ImportFormatError(
            f"not valid JSON: {exc.msg} (column {exc.colno})", where=where
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. 5000-digit numbers, absurd nesting
        raise ImportFormatError(f"not usable JSON: {exc}", where=name) from None


def _json_kind(value: object) -> str:
    kinds: list[tuple[type, str]] = [
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "an object"),
    ]
    return next((label for cls, label in kinds if isinstance(value, cls)), "null")


def _json_items(data: Any, text: str, name: str) -> tuple[list[Any], int]:
    """The resource list and the offset of its "[" (for per-item line numbers)."""
    start = _skip_space(text, 0)
    if isinstance(data, list):
        return data, start
    if isinstance(data, dict) and isinstance(data.get("resources"), list):
        return data["resources"], _key_value_offset(text, start, "resources")
    found = _json_kind(data)
    if isinstance(data, dict):
        keys = ", ".join(list(map(str, data))[:5]) or "none"
        found = f"an object without a 'resources' list (keys: {keys})"
    raise ImportFormatError(
        f'JSON must be a list of objects or {{"resources": [...]}} (found {found})',
        where=name,
    )


_JSON_DECODER = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, offset: int) -> int:
    match = _JSON_SPACE.match(text, offset)
    return match.end() if match else offset


def _key_value_offset(text: str, object_start: int, wanted: str) -> int:
    """Offset of the value of the *last* ``wanted`` key (json.loads keeps the last duplicate)."""
    offset, found = _skip_space(text, object_start + 1), -1
    while text[offset] != "}":
        key, offset = _JSON_DECODER.raw_decode(text, offset)
        offset = _skip_space(text, _skip_space(text, offset) + 1)  # past ":"
        if key == wanted:
            found = offset
        _, offset = _JSON_DECODER.raw_decode(text, offset)
        offset = _skip_space(text, offset)
        if text[offset] == ",":
            offset = _skip_space(text, offset + 1)
    return found


def _element_lines(text: str, array_start: int) -> Iterator[int]:
    """Line on which each element of the (already validated) array at ``array_start`` begins."""
    offset, line = _skip_space(text, array_start + 1), 1
    counted = 0
    while text[offset] != "]":
        line += text.count("\n", counted, offset)
        counted = offset
        yield line
        _, offset = _JSON_DECODER.raw_decode(text, offset)
        offset = _skip_space(text, offset)
        if text[offset] == ",":
            offset = _skip_space(text, offset + 1)


def _json_record(
    item: dict[str, Any], where: str, warnings: list[ImportWarning], unknown: dict[str, str]
) -> ResourceRecord:
    keys = list(item)
    fields, unknown_keys = _map_fields(keys, where)
    for key in unknown_keys:
        unknown.setdefault(key, where)
    values: dict[str, str] = {}
    topics: tuple[str, ...] = ()
    for key, canonical in zip(keys, fields, strict=True):
        if canonical == "topics":
            topics = _json_topics(item[key], where)
        elif canonical:
            values[canonical] = _json_text(item[key], key, where)
    return _record_from_fields(values, topics, where, warnings)


def _json_text(value: Any, key: str, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ImportFormatError(f"field {key!r} must be a string, not {_json_kind(value)}", where=where)


def _json_topics(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(clean_inline(v) for v in value if v.strip())
    return _split_topics(_json_text(value, "topics", where))


# =========================================================================== RSS / Atom

_ATOM_NAMESPACES = ("http://www.w3.org/2005/Atom", "http://purl.org/atom/ns#")


class _XmlRefused(Exception):
    """Raised from an expat handler to abort on constructs we refuse (entity declarations)."""


@dataclass(slots=True)
class _FeedScan:
    """What the well-formedness pass learned: root element and where each item starts."""

    root: tuple[str, str] | None = None
    item_lines: list[int] = field(default_factory=list)
    depth: int = 0


def _scan_xml(text: str, name: str) -> _FeedScan:
    """Check well-formedness with expat (exact line/column) and find item start lines.

    feedparser silently falls back to a lenient parser on broken XML, so this pass
    is what makes a broken feed an error.  Entity declarations are refused
    outright: feeds never need them and they enable entity-expansion attacks.
    """
    scan = _FeedScan()
    parser = expat.ParserCreate(namespace_separator=" ")

    def start(tag: str, _attrs: dict[str, str]) -> None:
        namespace, _, local = tag.rpartition(" ")
        if scan.depth == 0:
            scan.root = (namespace, local)
        elif scan.depth <= 2 and local in ("item", "entry"):
            scan.item_lines.append(parser.CurrentLineNumber)
        scan.depth += 1

    def end(_tag: str) -> None:
        scan.depth -= 1

    def refuse_entity(*_args: object) -> None:
        raise _XmlRefused("XML entity declarations are not allowed")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = refuse_entity
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        message = f"not well-formed XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1})"
        raise ImportFormatError(message, where=_at(name, exc.lineno)) from None
    except _XmlRefused as exc:
        raise ImportFormatError(str(exc), where=_at(name, parser.CurrentLineNumber)) from None
    return scan


def _feed_kind(scan: _FeedScan, name: str) -> str:
    namespace, local = scan.root or ("", "")
    if local == "rss":
        return "RSS"
    if local == "RDF":
        return "RSS 1.0"
    if local == "feed" and namespace in _ATOM_NAMESPACES:
        return "Atom"
    raise ImportFormatError(f"XML root element <{local}> is not an RSS or Atom feed", where=name)


@_storable
def parse_feed(text: str, *, name: str) -> ParseResult:
    """RSS 2.0/1.0 or Atom via feedparser, after our own strict well-formedness check."""
    text = _prepare(text, name)
    scan = _scan_xml(text, name)
    kind = _feed_kind(scan, name)
    parsed = feedparser.parse(
        io.BytesIO(text.encode("utf-8", "replace")),
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )
    _check_bozo(parsed, name)
    entries = list(parsed.entries)
    lines = scan.item_lines if len(scan.item_lines) == len(entries) else [1] * len(entries)
    feed_title = clean_inline(parsed.feed.get("title", "")) or None
    records = [
        _feed_record(entry, feed_title, _at(name, line))
        for entry, line in zip(entries, lines, strict=True)
    ]
    warnings = [] if records else [ImportWarning(_at(name, 1), f"{kind} feed has no items")]
    return ParseResult(records, warnings)


def _check_bozo(parsed: Any, name: str) -> None:
    """feedparser's own complaints, except a harmless charset override we forced ourselves."""
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if problem is not None and not isinstance(problem, feedparser.CharacterEncodingOverride):
        raise ImportFormatError(f"feed could not be parsed: {problem}", where=name)


_HTML_TYPES = ("text/html", "application/xhtml+xml")
_WORDPRESS_FOOTER_RE = re.compile(r"\s*The post .{1,300}? appeared first on .{1,200}?\.?\s*$")


def _entry_text(detail: Any, fallback: str) -> tuple[str, _HtmlText | None]:
    """Text of a feedparser text construct, stripping HTML when it is HTML."""
    value = (detail or {}).get("value", fallback) or ""
    if (detail or {}).get("type") in _HTML_TYPES:
        parsed = _read_html(value)
        return "\n\n".join(parsed.paragraphs()), parsed
    return value, None


def _feed_record(entry: Any, feed_title: str | None, where: str) -> ResourceRecord:
    title = clean_inline(_entry_text(entry.get("title_detail"), entry.get("title", ""))[0])
    if not title:
        raise ImportFormatError("feed item has no title", where=where)
    detail = entry.get("summary_detail") or next(iter(entry.get("content") or []), None)
    body, parsed_html = _entry_text(detail, entry.get("summary", ""))
    summary, truncated = _summary_fields(_WORDPRESS_FOOTER_RE.sub("", body))
    terms = [clean_inline(t.get("term") or "") for t in entry.get("tags") or []]
    kind = next(
        (
            t.casefold().removesuffix("s")
            for t in terms
            if t.casefold().removesuffix("s") in RESOURCE_TYPES
        ),
        None,
    )
    image_url, image_alt = _entry_image(entry, parsed_html, where)
    return ResourceRecord(
        title=title,
        summary=summary,
        url=_checked_url(entry.get("link", ""), where),
        type=kind,
        source=clean_inline((entry.get("source") or {}).get("title", "")) or feed_title,
        topics=tuple(t for t in terms if t and t.casefold().removesuffix("s") != kind),
        summary_truncated=truncated,
        published=_entry_date(entry),
        authors=_entry_authors(entry),
        image_url=image_url,
        image_alt=image_alt,
        origin=where,
    )


def _entry_date(entry: Any) -> datetime | None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if not stamp:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(stamp), UTC)
    except (OverflowError, ValueError, OSError):  # a year feedparser accepted but we cannot hold
        return None


def _entry_authors(entry: Any) -> str | None:
    """ "A", "A and B", "A, B and C" from the entry's author list."""
    names = [clean_inline(a.get("name") or "") for a in entry.get("authors") or []]
    names = [n for n in names if n] or [clean_inline(entry.get("author", ""))]
    names = [n for n in names if n]
    if len(names) <= 1:
        return names[0] if names else None
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _entry_image(
    entry: Any, parsed_html: _HtmlText | None, where: str
) -> tuple[str | None, str | None]:
    """media:thumbnail, an image media:content/enclosure, else the first http(s) <img>."""
    media = [*(entry.get("media_thumbnail") or []), *(entry.get("media_content") or [])]
    media += [
        e for e in entry.get("enclosures") or [] if str(e.get("type", "")).startswith("image/")
    ]
    for item in media:
        url = item.get("url") or item.get("href") or ""
        if url and item.get("medium", "image") == "image":
            return _checked_url(url, where, "image URL"), None
    for src, alt in parsed_html.images if parsed_html else []:
        if src.startswith(("http://", "https://")):
            return src, clean_inline(alt) or None
    return None, None


# =========================================================================== plain-text pages
#
# Three page shapes come out of copy-pasted web pages (see tests/test_parsers.py):
# a listing (title / summary blocks), an issue page (title, alt text, paragraphs,
# byline, photo credit, "Visit to ..." call to action), and a single resource
# page whose lines are not blank-separated.  Listing and issue pages share one
# block parser; a page that is a single block of 3+ lines is a single resource.

_NAVIGATION = frozenset(
    {
        "main menu",
        "menu",
        "explore more",
        "search",
        "skip to content",
        "skip to main content",
        "home",
        "share",
        "share this",
        "back to top",
        "previous",
        "next",
        "related",
        "related resources",
        "toggle navigation",
        "close",
        "log in",
        "login",
        "sign in",
    }
)
_BOILERPLATE_RE = re.compile(
    r"^(?:subscribe\b|sign up\b|follow us\b|©|copyright\b|all rights reserved|"
    r"privacy policy|terms of (?:use|service))",
    re.IGNORECASE,
)
_ISSUE_HEADING_RE = re.compile(r"^(?:issue|volume|vol\.)\s*(?:no\.?\s*|#\s*)?\d+\b", re.IGNORECASE)
_MORE_ONLY_RE = re.compile(rf"^{_ELLIPSIS}?\s*(?:read\s+more|continue\s+reading)\s*[›»>→]*$", re.I)
_BYLINE_RE = re.compile(r"^by\s+(?=[A-Z])", re.IGNORECASE)
_CREDIT_RE = re.compile(
    r"^(?:photo|photograph|image|illustration|cover image)s?(?:\s+credit)?\s*(?:by\b|:|courtesy\b)",
    re.IGNORECASE,
)
_CTA_RE = re.compile(
    r"^(?:(?:visit|click|tap)\b|(?:download|read|watch|listen to|view|access|see)\s+"
    r"(?:the\s+)?(?:full|complete|entire|whole)\b)",
    re.IGNORECASE,
)
_DANGLING_RE = re.compile(
    r"\b(?:found|available|accessed|located|read|viewed|downloaded)\s+(?:at|on|from|via|here)\s*:?$",
    re.IGNORECASE,
)
_NOT_TITLE_ENDINGS = (".", "…", ",", ";", ":")


def _is_title_like(text: str) -> bool:
    """Short, and not ending like a sentence: how a heading differs from summary prose."""
    core = text.rstrip("\"'”’)]")
    return len(text) <= 200 and len(text.split()) <= 30 and not core.endswith(_NOT_TITLE_ENDINGS)


def _line_kind(text: str) -> str:
    """One of: skip, more, byline, credit, cta, dangling, title, prose."""
    if (
        text.casefold().strip(" .:›»>→") in _NAVIGATION
        or _BOILERPLATE_RE.match(text)
        or _ISSUE_HEADING_RE.match(text)
    ):
        return "skip"
    checks = (
        (_MORE_ONLY_RE.match, "more"),
        (lambda t: _BYLINE_RE.match(t) if len(t) <= 150 else None, "byline"),
        (_CREDIT_RE.match, "credit"),
        (lambda t: _CTA_RE.match(t) if len(t) <= 200 else None, "cta"),
        (_DANGLING_RE.search, "dangling"),
    )
    kind = next((label for check, label in checks if check(text)), None)
    return kind or ("title" if _is_title_like(text) else "prose")


@dataclass(frozen=True, slots=True)
class _Piece:
    kind: str
    line: int
    text: str


def _page_lines(text: str) -> list[tuple[int, str]]:
    """(line number, cleaned text) for every line; Markdown heading marks are dropped."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [
        (n, clean_inline(re.sub(r"^#{1,6}\s+", "", raw.strip()))) for n, raw in enumerate(lines, 1)
    ]


def _blocks(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Group non-blank lines into blank-line-separated blocks."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, text in lines:
        if text:
            blocks[-1].append((number, text))
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _block_pieces(block: list[tuple[int, str]]) -> list[_Piece]:
    """Interpret one block: a lone line, title + image alt text, a wrapped paragraph, or lines."""
    first_line, first = block[0]
    if len(block) == 1:
        return [_Piece(_line_kind(first), first_line, first)]
    kinds = [_line_kind(text) for _, text in block]
    if len(block) == 2 and kinds == ["title", "title"]:
        return [_Piece("title", first_line, first), _Piece("alt", block[1][0], block[1][1])]
    if any(text[:1].islower() for _, text in block[1:]):
        joined = " ".join(text for _, text in block)
        return [_Piece(_line_kind(joined), first_line, joined)]
    return [_Piece(kind, n, text) for kind, (n, text) in zip(kinds, block, strict=True)]


@dataclass(slots=True)
class _Draft:
    """A text-page resource being assembled from consecutive pieces."""

    title: str
    line: int
    paragraphs: list[str] = field(default_factory=list)
    alt: str | None = None
    authors: str | None = None
    credit: str | None = None
    cta: str | None = None
    more: bool = False

    def add(self, piece: _Piece) -> None:
        if piece.kind == "prose":
            self.paragraphs.append(piece.text)
        elif piece.kind == "alt":
            self.alt = self.alt or piece.text
        elif piece.kind == "byline":
            self.authors = self.authors or _BYLINE_RE.sub("", piece.text).strip()
        elif piece.kind == "credit":
            self.credit = self.credit or piece.text
        elif piece.kind == "cta":
            self.cta = f"{self.cta} {piece.text}" if self.cta else piece.text
        elif piece.kind == "more":
            self.more = True

    def has_content(self) -> bool:
        return bool(self.paragraphs or self.alt or self.cta or self.authors)

    def record(self, name: str) -> ResourceRecord:
        summary, truncated = split_truncation("\n\n".join(self.paragraphs))
        return ResourceRecord(
            title=self.title,
            summary=summary,
            summary_truncated=truncated or self.more,
            authors=self.authors,
            image_alt=self.alt,
            image_credit=self.credit,
            call_to_action=self.cta,
            origin=_at(name, self.line),
        )


def _excerpt(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


_ORPHAN_LABELS = {
    "prose": "a summary",
    "byline": "a byline",
    "credit": "a photo credit",
    "cta": "a call to action",
    "alt": "an image description",
    "more": "a 'Read More' link",
}


def _parse_blocks(pieces: list[_Piece], name: str) -> ParseResult:
    """Titles open resources; everything else attaches to the open one or is reported."""
    records: list[ResourceRecord] = []
    warnings: list[ImportWarning] = []
    draft: _Draft | None = None

    def close() -> None:
        if draft is None:
            return
        if draft.has_content():
            records.append(draft.record(name))
        else:
            warnings.append(
                ImportWarning(
                    _at(name, draft.line),
                    (
                        f"skipped {_excerpt(draft.title)!r}: a title with no summary "
                        "(navigation or a section heading?)"
                    ),
                )
            )

    for piece in pieces:
        if piece.kind == "title":
            close()
            draft = _Draft(piece.text, piece.line)
        elif piece.kind == "dangling":
            warnings.append(
                ImportWarning(
                    _at(name, piece.line),
                    (f"dropped a sentence whose link was lost: {_excerpt(piece.text)!r}"),
                )
            )
        elif draft is not None:
            draft.add(piece)
        elif piece.kind != "skip":
            warnings.append(
                ImportWarning(
                    _at(name, piece.line),
                    (
                        f"skipped {_ORPHAN_LABELS[piece.kind]} with no title before it "
                        f"(the page starts mid-listing?): {_excerpt(piece.text)!r}"
                    ),
                )
            )
    close()
    return ParseResult(records, warnings)


def _join_title(title: str, subtitle: str) -> str:
    """ "Transforming for Tomorrow" + "A State Policymaker's Guide ..." → "...: A State ..."."""
    return f"{title} {subtitle}" if title.endswith((":", "?", "!", ".")) else f"{title}: {subtitle}"


_SUMMARY_TARGET = 250  # characters: one solid paragraph is enough for a newsletter blurb


def _single_page_summary(lines: list[tuple[int, str]]) -> str:
    """The first complete prose paragraph(s) of a page.

    Lines ending in ":" introduce a list that did not survive the copy-paste, and
    short heading-like lines are section heads, so both are skipped; collection
    stops at the first heading after some prose.
    """
    parts: list[str] = []
    for _, text in lines:
        kind = _line_kind(text)
        if kind == "title" and parts:
            break
        if kind == "prose" and not text.endswith(":"):
            parts.append(text)
            if sum(map(len, parts)) >= _SUMMARY_TARGET:
                break
    return "\n\n".join(parts)


def _parse_single_page(block: list[tuple[int, str]], name: str) -> ParseResult | None:
    """One resource: title (+ subtitle), first substantive paragraph(s); the rest is page body.

    Teasers for other pages and "Subscribe ..." lines at the bottom are ignored
    silently: they are the site's chrome, not resources.  Returns None when the
    block does not start with a title, so the caller can fall back.
    """
    lines = [(n, t) for n, t in block if _line_kind(t) != "skip"]
    if len(lines) < 2 or _line_kind(lines[0][1]) != "title":
        return None
    (line, title), rest = lines[0], lines[1:]
    if len(rest) >= 2 and _line_kind(rest[0][1]) == "title":
        title, rest = _join_title(title, rest[0][1]), rest[1:]
    summary, truncated = split_truncation(_single_page_summary(rest))
    byline = next((t for _, t in rest if _line_kind(t) == "byline"), None)
    record = ResourceRecord(
        title=title,
        summary=summary,
        summary_truncated=truncated,
        authors=_BYLINE_RE.sub("", byline).strip() if byline else None,
        origin=_at(name, line),
    )
    warnings = [] if summary else [ImportWarning(_at(name, line), "no summary paragraph found")]
    return ParseResult([record], warnings)


@_storable
def parse_text(text: str, *, name: str) -> ParseResult:
    """Plain-text page copied from a website: a listing, an issue, or a single resource page."""
    blocks = _blocks(_page_lines(_prepare(text, name)))
    if len(blocks) == 1 and len(blocks[0]) >= 3:
        single = _parse_single_page(blocks[0], name)
        if single is not None:
            return single
    result = _parse_blocks([p for block in blocks for p in _block_pieces(block)], name)
    if not result.records:
        result.warnings.append(ImportWarning(_at(name, 1), "no resources found in the page"))
    return result


_PARSERS: dict[str, Callable[..., ParseResult]] = {
    "csv": parse_csv,
    "json": parse_json,
    "feed": parse_feed,
    "text": parse_text,
}
