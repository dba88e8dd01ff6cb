"""The plain data rendering works on: an issue with every reference already resolved.

``IssueContent`` is built from the database (``newsletter.issues.store``) or
straight from a YAML source (``newsletter.issues.assemble``); rendering never
touches the database, so it is pure, fast and cacheable by ``content_hash``.
Markdown fields hold the editor's *untrusted* text; rendering sanitises them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ImageContent:
    url: str
    alt: str = ""
    caption: str | None = None
    credit: str | None = None  # "Photo by Allison Shelley/The Verbatim Agency for ..."


@dataclass(frozen=True)
class ItemContent:
    """One card: a library resource merged with the editor's overrides, or an article."""

    title: str
    url: str | None = None
    blurb_md: str = ""  # Markdown (a resource summary arrives escaped)
    kind: str | None = None  # resource type, shown as a badge: "report", "case study"
    source: str | None = None  # the organisation that published it
    byline: str | None = None  # "by Emily Liebtag and Mary Ryerse"
    image: ImageContent | None = None
    cta_text: str | None = None  # "Visit to read the complete article."
    cta_url: str | None = None
    topics: tuple[str, ...] = ()  # the resource's topics, for segment matching
    resource_id: int | None = None

    @property
    def cta_label(self) -> str:
        """The call to action as shown; a sentence ending "... found at" gets the site's name.

        The scraped seed pages lost the inline links, leaving sentences such as
        "This blog and the complete series may be found at"; naming the site
        keeps the editor's words and still reads as a complete button.
        """
        text = (self.cta_text or "Read more").rstrip()
        if self.cta_url and text.endswith((" at", ":")):
            return f"{text} {host(self.cta_url)}"
        return text


@dataclass(frozen=True)
class SectionContent:
    heading: str
    topics: tuple[str, ...] = ()
    items: tuple[ItemContent, ...] = ()
    image: ImageContent | None = None  # a banner under the heading

    @property
    def all_topics(self) -> frozenset[str]:
        """Section topics plus every item's topics, case-folded (what a segment matches)."""
        names = [*self.topics, *(t for item in self.items for t in item.topics)]
        return frozenset(n.casefold() for n in names)


@dataclass(frozen=True)
class IssueContent:
    number: int
    title: str  # "Issue 42: April 2018"
    issue_date: date
    subject: str
    slug: str
    preheader: str = ""
    intro_md: str = ""
    sections: tuple[SectionContent, ...] = ()

    @cached_property
    def content_hash(self) -> str:
        """A stable digest of everything rendered (the render cache key); computed once."""
        payload = json.dumps(dataclasses.asdict(self), default=_json_default, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def items(self) -> tuple[ItemContent, ...]:
        return tuple(item for section in self.sections for item in section.items)

    def with_sections(self, indices: tuple[int, ...]) -> IssueContent:
        """The same issue restricted to the sections at ``indices`` (a segment's view)."""
        chosen = tuple(self.sections[i] for i in indices)
        return dataclasses.replace(self, sections=chosen)


def host(url: str) -> str:
    """The host name for a label: https://www.knowledgeworks.org/x -> knowledgeworks.org."""
    name = urlsplit(url).hostname or url
    return name.removeprefix("www.")


def _json_default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")
