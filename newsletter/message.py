"""The contract between rendering and sending: a rendered email with placeholders.

Rendering (MJML) is expensive and happens once per issue and segment; the
result carries placeholders such as ``%%unsubscribe_url%%`` that are filled per
recipient by ``Template.fill``, which only joins pre-split string parts.
Placeholders in HTML context are written ``%%name:html%%`` and receive
HTML-escaped values; everywhere else (subject, text part, headers) they receive
the raw value.  SendGrid gets the same placeholders as ``substitutions``.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from newsletter.errors import ValidationError

# Per-recipient fields every template may use.
FIELDS = ("name", "email", "unsubscribe_url", "preferences_url", "web_url")
# Fields a campaign's tracked template adds (``newsletter.tracking.links``): the tracked
# URL of the link at position N, and the open pixel's whole <img> tag (raw HTML).
OPEN_PIXEL = "open_pixel"
_LINK_FIELD = re.compile(r"link_[1-9][0-9]{0,4}")
_PLACEHOLDER = re.compile(r"%%([a-z_0-9]+)(:html)?%%")


def is_field(name: str) -> bool:
    return name in FIELDS or name == OPEN_PIXEL or _LINK_FIELD.fullmatch(name) is not None


def link_field(position: int) -> str:
    """The field carrying the tracked URL of the link at ``position`` (1-based)."""
    return f"link_{position}"


def placeholder(name: str, *, html: bool = False) -> str:
    """The marker a template writes where a per-recipient value goes."""
    if not is_field(name):
        raise ValueError(f"unknown placeholder {name!r}")
    return f"%%{name}:html%%" if html else f"%%{name}%%"


# Everything str.splitlines() breaks on (the email package refuses the same set), plus NUL.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def escape(value: str) -> str:
    """``html.escape``, skipped for the usual value that has nothing to escape.

    A tracked campaign fills a dozen URLs per recipient that are URL-safe by
    construction; one regex search is cheaper than five ``str.replace`` calls.
    """
    return htmllib.escape(value) if _HTML_SPECIAL.search(value) else value


def check_header_value(name: str, value: str) -> str:
    """Refuse any line break or NUL in anything that becomes a header: no header injection, ever."""
    if not _LINE_BREAKS.isdisjoint(value):
        raise ValidationError(f"{name} contains a line break or NUL character")
    return value


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """What rendering returns: subject, HTML part, text part and extra headers."""

    subject: str
    html: str
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _split(source: str) -> tuple[tuple[str, ...], tuple[tuple[str, bool], ...]]:
    """Literal chunks and (field, is_html) slots, alternating: chunk, slot, chunk, ..."""
    chunks: list[str] = []
    slots: list[tuple[str, bool]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(source):
        if not is_field(match.group(1)):
            continue
        chunks.append(source[pos : match.start()])
        slots.append((match.group(1), match.group(2) is not None))
        pos = match.end()
    chunks.append(source[pos:])
    return tuple(chunks), tuple(slots)


@dataclass(frozen=True, slots=True)
class _Part:
    chunks: tuple[str, ...]
    slots: tuple[tuple[str, bool], ...]

    @classmethod
    def of(cls, source: str) -> _Part:
        return cls(*_split(source))

    def fill(self, raw: Mapping[str, str], escaped: Mapping[str, str]) -> str:
        if not self.slots:
            return self.chunks[0]
        out = [self.chunks[0]]
        for (name, is_html), chunk in zip(self.slots, self.chunks[1:], strict=True):
            out.append(escaped[name] if is_html else raw[name])
            out.append(chunk)
        return "".join(out)

    @property
    def fields(self) -> set[str]:
        return {name for name, _ in self.slots}


@dataclass(frozen=True, slots=True)
class Template:
    """A ``RenderedEmail`` pre-split for cheap per-recipient filling."""

    source: RenderedEmail
    subject: _Part
    html: _Part
    text: _Part
    headers: tuple[tuple[str, _Part], ...]
    # Every field filled per recipient: FIELDS, then any the template adds (tracked links).
    names: tuple[str, ...] = FIELDS

    @classmethod
    def compile(cls, rendered: RenderedEmail) -> Template:
        for name, value in rendered.headers.items():
            check_header_value("header name", name)
            check_header_value(name, value)
        check_header_value("subject", rendered.subject)
        parts = (rendered.subject, rendered.html, rendered.text)
        subject, html, text = (_Part.of(s) for s in parts)
        headers = tuple((k, _Part.of(v)) for k, v in rendered.headers.items())
        used = subject.fields | html.fields | text.fields
        for _, part in headers:
            used |= part.fields
        extra = sorted(used - set(FIELDS), key=_field_order)
        return cls(rendered, subject, html, text, headers, names=(*FIELDS, *extra))

    @property
    def fields(self) -> set[str]:
        used = self.subject.fields | self.html.fields | self.text.fields
        for _, part in self.headers:
            used |= part.fields
        return used

    def fill(self, values: Mapping[str, str]) -> RenderedEmail:
        """The email for one recipient; missing fields become empty strings."""
        raw = {name: values.get(name, "") for name in self.names}
        for name in ("name", "email"):
            check_header_value(name, raw[name])
        escaped = {name: escape(value) for name, value in raw.items()}
        return RenderedEmail(
            subject=self.subject.fill(raw, escaped),
            html=self.html.fill(raw, escaped),
            text=self.text.fill(raw, escaped),
            headers={k: part.fill(raw, escaped) for k, part in self.headers},
        )


def _field_order(name: str) -> tuple[int, str]:
    """Tracked links in position order (link_2 before link_10), the pixel last."""
    if name.startswith("link_"):
        return int(name[5:]), ""
    return 1 << 30, name


def substitutions(values: Mapping[str, str], names: tuple[str, ...] = FIELDS) -> dict[str, str]:
    """Placeholder -> value pairs for providers that substitute themselves (SendGrid)."""
    subs: dict[str, str] = {}
    for name in names:
        value = values.get(name, "")
        subs[placeholder(name)] = value
        subs[placeholder(name, html=True)] = escape(value)
    return subs
