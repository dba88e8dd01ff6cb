"""Which sections of an issue a segment (a subscriber's chosen topics) receives.

Rules, in order:

* no segment (``None`` or empty): the whole issue;
* a section with no topics at all (none of its own, none on its items) is
  general news and goes to everyone;
* a section goes to a segment when its topics, or any of its items' resource
  topics, intersect the segment (case-insensitively);
* if a segment matches *no* topical section, it gets the whole issue: a
  subscriber whose interests this issue does not cover still gets the issue
  rather than a shell of general sections (or nothing), which is what an editor
  who sent "Issue 42" to the list expects.

The result is a tuple of section indices, which is also the render cache key:
two segments selecting the same sections share one MJML compilation.
"""

from __future__ import annotations

from collections.abc import Iterable

from newsletter.render.content import IssueContent

Segment = frozenset[str] | None


def normalise_segment(topics: Iterable[str] | None) -> frozenset[str]:
    """Topic names as the matcher compares them (stripped, case-folded)."""
    return frozenset(t.strip().casefold() for t in topics or () if t.strip())


def select_sections(issue: IssueContent, segment: Segment) -> tuple[int, ...]:
    """Indices of the sections ``segment`` receives (see the module docstring)."""
    everything = tuple(range(len(issue.sections)))
    wanted = normalise_segment(segment)
    if not wanted:
        return everything
    general: list[int] = []
    matched: list[int] = []
    for index, section in enumerate(issue.sections):
        topics = section.all_topics
        if not topics:
            general.append(index)
        elif topics & wanted:
            matched.append(index)
    if not matched:
        return everything
    return tuple(sorted(general + matched))
