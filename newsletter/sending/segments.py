"""Segments: which of the issue's topics a recipient chose, as a bitmask.

A segment is the set of the *issue's* topics a subscriber chose (their other
topics cannot change what they receive), so the number of renders per campaign
is the number of distinct such sets, not the number of topic combinations in
the audience.  It is stored as a decimal bitmask over ``Campaign.segment_topics``
so SQLite and PostgreSQL can compute it in one ``SUM(CASE ...)`` without
ordered string aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.errors import ValidationError

MAX_TOPICS = 62  # bits of a signed 64-bit integer we may use


def check_universe(topics: Sequence[str]) -> list[str]:
    unique = sorted(set(topics))
    if len(unique) > MAX_TOPICS:
        raise ValidationError(f"an issue may use at most {MAX_TOPICS} topics, not {len(unique)}")
    return unique


def encode_segment(chosen: Sequence[str], universe: Sequence[str]) -> str:
    mask = 0
    for index, topic in enumerate(universe):
        if topic in chosen:
            mask |= 1 << index
    return str(mask)


def decode_segment(segment: str, universe: Sequence[str]) -> frozenset[str]:
    """The chosen topics; empty means 'no preference': the whole issue."""
    mask = int(segment or 0)
    return frozenset(t for i, t in enumerate(universe) if mask >> i & 1)
