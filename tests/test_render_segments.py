"""Segments: which sections a subscriber's topics receive, and one render per segment."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
from issue_helpers import THEME, issue, issue_42, item

from newsletter.message import Template
from newsletter.render import Renderer, SectionContent, render_issue, select_sections

POLICY = SectionContent("Policy", ("Policy & ESSA",), (item("P"),))
EQUITY = SectionContent("Equity", ("Equity",), (item("E"),))
GENERAL = SectionContent("General", (), (item("G"),))
BY_ITEM = SectionContent("Mixed", (), (item("A", topics=("Assessment",)),))
CONTENT = issue(POLICY, EQUITY, GENERAL, BY_ITEM)


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (None, (0, 1, 2, 3)),
        (frozenset(), (0, 1, 2, 3)),
        (frozenset({"Equity"}), (1, 2)),  # its section plus the general one
        (frozenset({"equity "}), (1, 2)),  # case and spaces do not matter
        (frozenset({"Assessment"}), (2, 3)),  # matched through an item's resource topics
        (frozenset({"Policy & ESSA", "Equity"}), (0, 1, 2)),
        (frozenset({"Media Literacy"}), (0, 1, 2, 3)),  # nothing matches: the whole issue
    ],
)
def test_select_sections(segment: frozenset[str] | None, expected: tuple[int, ...]) -> None:
    assert select_sections(CONTENT, segment) == expected


def test_segment_email_contains_only_its_sections() -> None:
    html = render_issue(CONTENT, frozenset({"Equity"}), theme=THEME, renderer=Renderer()).html
    headings = re.findall(r"<h2[^>]*>([^<]+)</h2>", html)
    assert headings == ["Equity", "General"]


def test_issue_42_segments() -> None:
    content = issue_42()
    # "Rethinking the School Day" has no topics (its article has none): everyone gets it.
    assert select_sections(content, frozenset({"English Language Learners"})) == (1, 2)
    assert select_sections(content, frozenset({"Policy & ESSA"})) == (0, 2)
    assert select_sections(content, frozenset({"Equity"})) == (0, 1, 2)  # item 1 is tagged Equity


def test_one_render_per_segment_not_per_recipient() -> None:
    """A simulated send: 2,000 recipients, a realistic topic mix, renders == distinct views."""
    rng = random.Random(42)
    topics = [
        "Policy & ESSA",
        "Equity",
        "English Language Learners",
        "Assessment",
        "Media Literacy",
    ]
    audience = [frozenset(rng.sample(topics, rng.randint(0, 2))) for _ in range(2000)]
    renderer = Renderer()
    content = issue_42()
    templates: dict[frozenset[str], Template] = {}
    sent = Counter[int]()
    for n, segment in enumerate(audience):
        if segment not in templates:
            templates[segment] = Template.compile(
                render_issue(content, segment or None, theme=THEME, renderer=renderer)
            )
        email = templates[segment].fill({"email": f"r{n}@example.org", "unsubscribe_url": "u"})
        sent[len(email.html)] += 1
    distinct_segments = len(set(audience))
    distinct_views = len({select_sections(content, s or None) for s in audience})
    assert sum(sent.values()) == 2000
    assert renderer.stats.compilations == distinct_views <= distinct_segments < 2000
    assert renderer.stats.hits == distinct_segments - distinct_views
