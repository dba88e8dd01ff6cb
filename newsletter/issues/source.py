"""Issue source files: one human-editable YAML file per issue (``issues/042-2018-04.yaml``).

Loading keeps the line of every key, so each mistake is reported as one line
naming ``file:line`` (a ``ValidationError``), the way a compiler would.  Dumping
writes the same shape back (``newsletter issue export``), and loading a dump
gives an equal ``IssueSource``: the round trip loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import yaml

from newsletter.errors import ValidationError
from newsletter.message import check_header_value
from newsletter.models.issues import IssueStatus
from newsletter.render.markup import bad_urls, url_problem

T = TypeVar("T")

# --- the data ------------------------------------------------------------------


@dataclass
class ImageSource:
    url: str | None = None
    alt: str | None = None
    caption: str | None = None
    credit: str | None = None


@dataclass
class CtaSource:
    text: str | None = None
    url: str | None = None


@dataclass
class ItemSource:
    """A resource reference with overrides, or (no ``resource``) a free-standing article."""

    resource: str | None = None  # id, slug or URL
    title: str | None = None
    byline: str | None = None
    url: str | None = None
    blurb: str | None = None  # Markdown, replaces the resource's summary
    body: str | None = None  # Markdown, an article's text
    image: ImageSource | None = None
    cta: CtaSource | None = None
    where: str = field(default="", compare=False)


@dataclass
class SectionSource:
    heading: str
    topics: list[str] = field(default_factory=list)
    items: list[ItemSource] = field(default_factory=list)
    image: ImageSource | None = None  # a banner under the heading (url and alt)
    where: str = field(default="", compare=False)


@dataclass
class IssueSource:
    number: int
    title: str
    date: date
    subject: str
    slug: str | None = None
    status: str | None = None
    preheader: str = ""
    intro: str = ""
    sections: list[SectionSource] = field(default_factory=list)
    name: str = field(default="<issue>", compare=False)  # file name, for messages
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def where(self, key: str | None = None) -> str:
        return f"{self.name}:{self.lines.get(key or '', 1)}"

    def walk(self) -> Iterator[tuple[SectionSource, ItemSource]]:
        for section in self.sections:
            for item in section.items:
                yield section, item


# --- problems, all of them at once --------------------------------------------------


class SourceError(ValidationError):
    """Every problem found in an issue file, reported together (one line: what and where).

    Fixing one problem per run is slow; editors get the whole list, first
    problem first, each with its ``file:line``.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(dict.fromkeys(problems))  # (where, message), in file order
        where, first = self.problems[0]
        rest = "; ".join(f"{w}: {m}" for w, m in self.problems[1:])
        more = f" (and {len(self.problems) - 1} more: {rest})" if rest else ""
        super().__init__(first + more, where=where)


class Problems:
    """Collects ``ValidationError``s while a file is checked, then raises them together."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, exc: ValidationError) -> None:
        if isinstance(exc, SourceError):
            self.found.extend(exc.problems)
        else:
            self.found.append((exc.where or "", exc.message))

    def attempt(self, build: Callable[[], T], default: T) -> T:
        """``build()``, or ``default`` with its problem noted, so checking goes on."""
        try:
            return build()
        except ValidationError as exc:
            self.add(exc)
            return default

    def raise_any(self) -> None:
        if self.found:
            raise SourceError(self.found)


# --- YAML with line numbers -----------------------------------------------------


class _Map(dict[Any, Any]):
    """A mapping that remembers the line of each key (1-based)."""

    line: int = 1
    lines: dict[Any, int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are ``_Map`` and which refuses duplicate keys."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    mapping = _Map()
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            raise _Problem(f"duplicate key {key!r}", line)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = line
    return mapping


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


class _Problem(Exception):
    """A parse problem with its line; turned into a ValidationError naming the file."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def _load_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)
    except _Problem as exc:
        raise ValidationError(exc.message, where=f"{name}:{exc.line}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ValidationError(f"bad YAML: {what}", where=f"{name}:{line}") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"bad YAML: {exc}", where=f"{name}:1") from None


# --- YAML -> IssueSource ---------------------------------------------------------

ISSUE_KEYS = {"number", "title", "slug", "date", "status", "subject", "preheader", "intro",
              "sections"}  # fmt: skip
SECTION_KEYS = {"heading", "topics", "items", "image"}
ITEM_KEYS = {"resource", "title", "byline", "url", "blurb", "body", "image", "cta"}
IMAGE_KEYS = {"url", "alt", "caption", "credit"}
CTA_KEYS = {"text", "url"}


@dataclass
class _Reader:
    """Typed access to one ``_Map`` with ``file:line`` errors."""

    data: _Map
    name: str
    problems: Problems = field(default_factory=Problems)

    def at(self, key: str | None = None) -> str:
        line = self.data.lines.get(key, self.data.line) if key else self.data.line
        return f"{self.name}:{line}"

    def fail(self, message: str, key: str | None = None) -> ValidationError:
        return ValidationError(message, where=self.at(key))

    def check_keys(self, allowed: set[str], what: str) -> None:
        """Note every unknown key (a typo like ``subjet`` is the commonest mistake)."""
        expected = ", ".join(sorted(allowed))
        for key in self.data:
            if key not in allowed:
                self.problems.add(
                    self.fail(f"unknown {what} key {key!r} (expected: {expected})", key)
                )

    def get(self, build: Callable[[], T], default: T) -> T:
        return self.problems.attempt(build, default)

    def text(self, key: str, *, required: bool = False) -> str | None:
        """A text field; multi-line (Markdown) keeps its inner indentation, only the
        surrounding blank lines go, so a dump and re-load compare equal."""
        value = self.data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.fail(f"missing {key}", key if key in self.data else None)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(f"{key} must be text", key)
        text = str(value)
        if "\x00" in text:  # no database can store it, no reader wants it
            raise self.fail(f"{key} contains a NUL character", key)
        return text.strip("\n") if "\n" in text else text.strip()

    def child(self, key: str, what: str) -> _Reader | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, _Map):
            raise self.fail(f"{key} must be a mapping of {what}", key)
        return _Reader(value, self.name, self.problems)

    def children(self, key: str) -> list[_Reader]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, _Map) for v in value):
            raise self.fail(f"{key} must be a list of mappings", key)
        return [_Reader(v, self.name, self.problems) for v in value]


def _number(reader: _Reader) -> int:
    value = reader.data.get("number")
    if value is None:
        raise reader.fail("missing number", "number" if "number" in reader.data else None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise reader.fail("number must be a positive whole number", "number")
    return value


def _date(reader: _Reader) -> date:
    value = reader.data.get("date")
    if isinstance(value, date):
        return value
    if value is None or not str(value).strip():
        raise reader.fail("missing date (YYYY-MM-DD)", "date" if "date" in reader.data else None)
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise reader.fail(f"date must be YYYY-MM-DD, not {value!r}", "date") from None


def _status(reader: _Reader) -> str | None:
    status = reader.text("status")
    if status is not None and status not in set(IssueStatus):
        allowed = ", ".join(IssueStatus)
        raise reader.fail(f"status must be one of {allowed}, not {status!r}", "status")
    return status


def _topics(reader: _Reader) -> list[str]:
    value = reader.data.get("topics") or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise reader.fail("topics must be a list of topic names", "topics")
    return [v.strip() for v in value]


def _image(reader: _Reader | None) -> ImageSource | None:
    if reader is None:
        return None
    reader.check_keys(IMAGE_KEYS, "image")
    return ImageSource(
        url=reader.text("url"),
        alt=reader.text("alt"),
        caption=reader.text("caption"),
        credit=reader.text("credit"),
    )


def _cta(reader: _Reader | None) -> CtaSource | None:
    if reader is None:
        return None
    reader.check_keys(CTA_KEYS, "cta")
    return CtaSource(text=reader.text("text"), url=reader.text("url"))


def _text(reader: _Reader, key: str) -> str | None:
    return reader.get(lambda: reader.text(key), None)


def _required(reader: _Reader, key: str) -> str:
    return reader.get(lambda: reader.text(key, required=True), None) or ""


def _children(reader: _Reader, key: str) -> list[_Reader]:
    none: list[_Reader] = []
    return reader.get(lambda: reader.children(key), none)


def _item(reader: _Reader) -> ItemSource:
    reader.check_keys(ITEM_KEYS, "item")
    item = ItemSource(
        resource=_text(reader, "resource"),
        title=_text(reader, "title"),
        byline=_text(reader, "byline"),
        url=_text(reader, "url"),
        blurb=_text(reader, "blurb"),
        body=_text(reader, "body"),
        image=reader.get(lambda: _image(reader.child("image", "url, alt, caption, credit")), None),
        cta=reader.get(lambda: _cta(reader.child("cta", "text, url")), None),
        where=reader.at(),
    )
    if item.resource is None and item.title is None:
        reader.problems.add(reader.fail("an item needs a resource (id, slug or URL) or a title"))
    if item.resource is None and item.blurb is not None:
        reader.problems.add(reader.fail("an article has a body, not a blurb", "blurb"))
    if item.resource is not None and item.body is not None:
        reader.problems.add(reader.fail("a resource item has a blurb, not a body", "body"))
    return item


def _section(reader: _Reader) -> SectionSource:
    reader.check_keys(SECTION_KEYS, "section")
    return SectionSource(
        heading=_required(reader, "heading"),
        topics=reader.get(lambda: _topics(reader), []),
        items=[_item(r) for r in _children(reader, "items")],
        image=reader.get(lambda: _image(reader.child("image", "url, alt")), None),
        where=reader.at(),
    )


def parse_source(text: str, name: str = "<issue>") -> IssueSource:
    """Parse and check an issue file's text; every problem is reported, each with ``name:line``.

    Bad YAML stops at once (nothing after it can be read); anything else is
    noted and checking goes on, so one run lists all that is wrong.
    """
    data = _load_yaml(text, name)
    if not isinstance(data, _Map):
        raise ValidationError("an issue file must be a YAML mapping", where=f"{name}:1")
    reader = _Reader(data, name)
    reader.check_keys(ISSUE_KEYS, "issue")
    source = IssueSource(
        number=reader.get(lambda: _number(reader), 0),
        title=_required(reader, "title"),
        date=reader.get(lambda: _date(reader), date.min),
        subject=_required(reader, "subject"),
        slug=_text(reader, "slug"),
        status=reader.get(lambda: _status(reader), None),
        preheader=_text(reader, "preheader") or "",
        intro=_text(reader, "intro") or "",
        sections=[_section(r) for r in _children(reader, "sections")],
        name=name,
        lines={str(k): v for k, v in data.lines.items()},
    )
    reader.problems.attempt(lambda: check_source(source), None)
    reader.problems.raise_any()
    return source


def load_source(path: Path) -> IssueSource:
    """Read and parse an issue file (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError("no such issue file", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read issue file: {exc}", where=str(path)) from None
    return parse_source(text, str(path))


# --- checks that need no database ---------------------------------------------


def _check_markdown(text: str | None, where: str, problems: Problems) -> None:
    for problem in bad_urls(text or ""):
        problems.add(ValidationError(f"bad Markdown: {problem}", where=where))


def _check_url(url: str | None, kind: str, where: str, problems: Problems) -> None:
    problem = url_problem(url, kind=kind) if url else None
    if problem:
        problems.add(ValidationError(problem, where=where))


def _item_key(item: ItemSource) -> str:
    return f"resource {item.resource}" if item.resource else f"article {item.title!r}"


def check_source(source: IssueSource) -> None:
    """Subject, Markdown links and images, item URLs, duplicate references: all problems."""
    problems = Problems()
    if source.subject.strip():
        try:
            check_header_value("subject", source.subject)  # it becomes the Subject: header
        except ValidationError as exc:
            problems.add(ValidationError(exc.message, where=source.where("subject")))
    else:  # also noted when the file was read: the same problem is listed once
        problems.add(ValidationError("missing subject", where=source.where("subject")))
    _check_markdown(source.intro, source.where("intro"), problems)
    for section in source.sections:
        _check_url(section.image.url if section.image else None, "image", section.where, problems)
    seen: dict[str, str] = {}
    for _section, item in source.walk():
        _check_markdown(item.blurb or item.body, item.where, problems)
        _check_url(item.url, "link", item.where, problems)
        _check_url(item.image.url if item.image else None, "image", item.where, problems)
        _check_url(item.cta.url if item.cta else None, "link", item.where, problems)
        key = _item_key(item)
        if key in seen:
            problems.add(
                ValidationError(
                    f"duplicate item: {key} is already at {seen[key]}", where=item.where
                )
            )
        seen[key] = item.where
    problems.raise_any()


# --- IssueSource -> YAML ----------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text and indented lists: the way editors write the files."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    """Topic lists in flow style (``topics: [Equity, Assessment]``), other lists in blocks."""
    flow = all(isinstance(v, str) and "\n" not in v for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def _compact(pairs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pairs.items() if v not in (None, "", [], {})}


def _item_dict(item: ItemSource) -> dict[str, Any]:
    image = item.image and _compact(vars(item.image))
    cta = item.cta and _compact(vars(item.cta))
    return _compact(
        {
            "resource": item.resource,
            "title": item.title,
            "byline": item.byline,
            "url": item.url,
            "blurb": item.blurb,
            "body": item.body,
            "image": image,
            "cta": cta,
        }
    )


def source_as_dict(source: IssueSource) -> dict[str, Any]:
    """The YAML-ready shape, keys in the order an editor reads them."""
    sections = [
        _compact(
            {
                "heading": s.heading,
                "topics": list(s.topics),
                "image": s.image and _compact(vars(s.image)),
                "items": [_item_dict(i) for i in s.items],
            }
        )
        for s in source.sections
    ]
    head = {"number": source.number, "title": source.title, "slug": source.slug}
    rest = {"preheader": source.preheader, "intro": source.intro, "sections": sections}
    return _compact(
        {**head, "date": source.date, "status": source.status, "subject": source.subject, **rest}
    )


def dump_source(source: IssueSource) -> str:
    """YAML text that ``parse_source`` reads back into an equal ``IssueSource``."""
    body = yaml.dump(
        source_as_dict(source),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return f"# {source.title}\n{body}"
