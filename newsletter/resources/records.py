"""The data contract between importers and the rest of the pipeline.

Parsers only ever produce these plain, immutable values; they never touch the
database.  That keeps importing pure (easy to test, all-or-nothing) and lets the
DB layer decide how to merge duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The longest value the library can store per text field (the column sizes in
# ``models/resources.py``); importers refuse longer ones with a clear error.
MAX_LENGTHS = {
    "title": 500,
    "url": 2000,
    "source": 300,
    "authors": 500,
    "image_url": 2000,
    "image_alt": 500,
    "image_credit": 500,
    "call_to_action": 300,
}
TOPIC_MAX_LENGTH = 100


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """One curated resource as found in an input file (not yet stored)."""

    title: str
    summary: str = ""
    url: str | None = None
    type: str | None = None  # None = infer later
    source: str | None = None  # source organisation
    topics: tuple[str, ...] = ()
    summary_truncated: bool = False  # summary ended in "…", "... Read More ›" etc.
    published: datetime | None = None
    authors: str | None = None  # "Emily Liebtag and Mary Ryerse"
    image_url: str | None = None
    image_alt: str | None = None
    image_credit: str | None = None
    call_to_action: str | None = None  # "Visit to read the complete article."
    origin: str = ""  # "path:line" where the record started


@dataclass(frozen=True, slots=True)
class ImportWarning:
    """Something was skipped or guessed; the import still succeeded."""

    where: str  # "path:line"
    message: str


@dataclass(slots=True)
class ParseResult:
    """Everything one input file yielded: all its records, or an exception instead."""

    records: list[ResourceRecord]
    warnings: list[ImportWarning]
