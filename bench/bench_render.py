"""Rendering cost of one campaign: MJML compilations per campaign and per-recipient filling.

    python -m bench.bench_render [--recipients 10000] [--repeat 5]

Simulates an audience with a realistic topic mix (a third choose no topics, the
rest one to three, popular topics more often), groups it by segment the way
sending does, renders Issue 42 once per segment, and fills every recipient's
copy with ``Template.fill``.  Issue 42 is built from its YAML source and the
bundled seed page, so no database is needed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from newsletter.issues.assemble import ResourceFacts, build_content
from newsletter.issues.source import load_source
from newsletter.message import Template
from newsletter.render import (
    IssueContent,
    Renderer,
    SectionContent,
    Theme,
    render_issue,
    select_sections,
)
from newsletter.resources import library
from newsletter.resources.classify import DEFAULT_TOPICS, classify
from newsletter.resources.parsers import parse_file

REPO = Path(__file__).resolve().parent.parent
ISSUE = REPO / "issues" / "042-2018-04.yaml"
PAGE = REPO / "newsletter" / "sample_data" / "library" / "003_23e90bc3fab8e407.txt"
THEME = Theme()
TARGET_FILL_US = 20.0


def issue_42() -> IssueContent:
    facts = {}
    for n, record in enumerate(parse_file(PAGE).records, start=1):
        record = classify(record, DEFAULT_TOPICS)
        slug = library.slugify(record.title)
        facts[slug] = ResourceFacts(
            id=n,
            slug=slug,
            title=record.title,
            summary=record.summary,
            type=record.type,
            authors=record.authors,
            image_alt=record.image_alt,
            image_credit=record.image_credit,
            call_to_action=record.call_to_action,
            topics=record.topics,
        )
    return build_content(load_source(ISSUE), facts)


def audience(size: int, seed: int = 42) -> list[frozenset[str]]:
    """Each recipient's chosen topics: 1/3 none, else 1-3 topics weighted by popularity."""
    rng = random.Random(seed)
    names = [t.name for t in DEFAULT_TOPICS]
    weights = [1.0 / (rank + 1) for rank in range(len(names))]  # Zipf-like popularity
    people: list[frozenset[str]] = []
    for _ in range(size):
        if rng.random() < 1 / 3:
            people.append(frozenset())
            continue
        k = rng.choice((1, 1, 2, 2, 3))
        people.append(frozenset(rng.choices(names, weights=weights, k=k)))
    return people


def values_for(n: int) -> dict[str, str]:
    token = f"{n:08d}.c2lnbmVkLXRva2VuLWZvci1yZWNpcGllbnQ"
    return {
        "name": f"Reader {n}",
        "email": f"reader{n}@example.org",
        "unsubscribe_url": f"https://news.example.org/u/{token}",
        "preferences_url": f"https://news.example.org/preferences/{token}",
        "web_url": "https://news.example.org/archive/42",
    }


def time_one_render(content: IssueContent, repeat: int) -> float:
    """Median seconds for one uncached render (Jinja + MJML + text part)."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        render_issue(content, None, theme=THEME, renderer=Renderer())
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def wide_issue(base: IssueContent) -> IssueContent:
    """A worst case for caching: one section per topic, so most segments differ."""
    item = base.items[0]
    sections = tuple(
        SectionContent(heading=t.name, topics=(t.name,), items=(replace(item, topics=()),))
        for t in DEFAULT_TOPICS
    )
    return replace(base, sections=sections)


@dataclass
class CampaignRun:
    seconds: float  # all renders (and Template.compile) for the campaign
    segments: int  # distinct topic sets in the audience
    views: int  # distinct section selections among them
    compilations: int  # MJML compilations actually run
    templates: dict[frozenset[str], Template]


def campaign(content: IssueContent, people: list[frozenset[str]]) -> CampaignRun:
    """Render once per segment (as sending does) and report what it cost."""
    segments = Counter(people)
    renderer = Renderer()
    start = time.perf_counter()
    templates = {
        segment: Template.compile(
            render_issue(content, segment or None, theme=THEME, renderer=renderer)
        )
        for segment in segments
    }
    return CampaignRun(
        seconds=time.perf_counter() - start,
        segments=len(segments),
        views=len({select_sections(content, s or None) for s in segments}),
        compilations=renderer.stats.compilations,
        templates=templates,
    )


def fill_cost(
    templates: dict[frozenset[str], Template], people: list[frozenset[str]], repeat: int
) -> float:
    """Median µs per recipient for ``Template.fill`` (building the values dict excluded)."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for n, segment in enumerate(people):
            templates[segment].fill(values_for(n))
        samples.append((time.perf_counter() - start) / len(people) * 1e6)
    return statistics.median(samples) - _values_cost(len(people))


def tracked_costs(
    content: IssueContent, people: list[frozenset[str]], repeat: int
) -> tuple[float, float, int]:
    """With first-party tracking, as a campaign sends: (fill µs, signed values µs, links).

    The templates carry a ``%%link_N%%`` per link and the pixel; the values add one
    signed URL per link (``TrackedLinks.values``: one SHAKE call per recipient).
    """
    from newsletter.message import placeholder
    from newsletter.tracking.links import issue_links, track
    from newsletter.tracking.personal import TrackedLinks
    from newsletter.tracking.tokens import LinkSigner

    resolve = {placeholder("web_url", html=True): "https://news.example.org/archive/42"}
    renderer = Renderer()
    full = render_issue(content, None, theme=THEME, renderer=renderer)
    specs = issue_links(full, content, resolve=resolve)
    positions = {s.key: s.position for s in specs}
    templates = {
        segment: Template.compile(track(
            render_issue(content, segment or None, theme=THEME, renderer=renderer),
            sections=select_sections(content, segment or None), positions=positions,
            resolve=resolve,
        ))
        for segment in set(people)
    }  # fmt: skip
    links = TrackedLinks(issue_id=42, urls={s.position: s.key.url for s in specs},
                         signer=LinkSigner(["bench-secret-0123456789"]),
                         base_url="https://news.example.org")  # fmt: skip
    signed, fills = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        extra = [links.values(n) for n in range(len(people))]
        signed.append((time.perf_counter() - start) / len(people) * 1e6)
        start = time.perf_counter()
        for n, segment in enumerate(people):
            templates[segment].fill({**values_for(n), **extra[n]})
        fills.append((time.perf_counter() - start) / len(people) * 1e6)
    return (
        statistics.median(fills) - _values_cost(len(people)),
        statistics.median(signed),
        len(specs),
    )


def run(recipients: int, repeat: int) -> None:
    content = issue_42()
    people = audience(recipients)
    real = campaign(content, people)
    wide = campaign(wide_issue(content), people)
    fill_us = fill_cost(real.templates, people, repeat)
    tracked_fill, signed_us, links = tracked_costs(content, people, repeat)
    one = time_one_render(content, repeat)
    size = len(render_issue(content, None, theme=THEME).html.encode())
    rows = [
        ("recipients", f"{recipients:,}"),
        ("distinct segments (topic sets)", f"{real.segments:,}"),
        ("Issue 42 (3 sections): distinct section selections", f"{real.views}"),
        ("Issue 42: MJML compilations for the campaign", f"{real.compilations}"),
        ("Issue 42: all renders for the campaign", f"{real.seconds * 1e3:.0f} ms"),
        ("one section per topic (14): MJML compilations", f"{wide.compilations}"),
        ("one section per topic (14): all renders", f"{wide.seconds * 1e3:.0f} ms"),
        ("one uncached render (Jinja + MJML + text)", f"{one * 1e3:.1f} ms"),
        ("if rendered per recipient instead (estimate)", f"{one * recipients:.0f} s"),
        (
            "Template.fill per recipient (median)",
            f"{fill_us:.1f} µs (target < {TARGET_FILL_US:.0f})",
        ),
        (f"tracked ({links} links + pixel): Template.fill per recipient", f"{tracked_fill:.1f} µs"),
        ("tracked: signing every link of a recipient", f"{signed_us:.1f} µs"),
        ("HTML size (whole Issue 42)", f"{size:,} bytes"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"Rendering benchmark: Issue 42, Python {sys.version.split()[0]}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    if fill_us > TARGET_FILL_US:
        print(f"WARNING: fill cost {fill_us:.1f} µs is over the {TARGET_FILL_US:.0f} µs target")


def _values_cost(recipients: int) -> float:
    """µs per recipient spent building the values dict (excluded from the fill figure)."""
    start = time.perf_counter()
    for n in range(recipients):
        values_for(n)
    return (time.perf_counter() - start) / recipients * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    run(args.recipients, args.repeat)


if __name__ == "__main__":
    main()
