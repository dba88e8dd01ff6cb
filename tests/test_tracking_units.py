"""The pure parts of first-party tracking: tokens, link rewriting, machine rules, the spool."""

from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.config import load_settings
from newsletter.message import Template, placeholder
from newsletter.render import render_issue
from newsletter.render.segments import select_sections
from newsletter.tracking import machine, spool
from newsletter.tracking.links import issue_links, track
from newsletter.tracking.machine import Hit
from newsletter.tracking.personal import TrackedLinks
from newsletter.tracking.tokens import MAX_POSITION, LinkSigner
from tests.issue_helpers import issue_42

KEYS = ["an-old-key-0123456789", "the-signing-key-0123456789"]
WEB = "http://127.0.0.1:8000/archive/42"
RESOLVE = {placeholder("web_url", html=True): WEB}


# --- tokens ----------------------------------------------------------------------------


def test_tokens_name_the_row_the_issue_and_the_link_and_are_short() -> None:
    signer = LinkSigner(KEYS)
    tokens = signer.tokens(987_654_321_012, 42, 30)
    assert all(len(t) <= 60 for t in tokens) and len(set(tokens)) == 30
    hit = signer.verify(tokens[17])
    assert hit is not None and (hit.delivery_id, hit.issue_id, hit.position) == (
        987_654_321_012,
        42,
        17,
    )


def test_every_altered_character_is_refused() -> None:
    signer = LinkSigner(KEYS)
    token = signer.tokens(1234, 42, 5)[3]
    alphabet = "0123456789abcdefABCDEF-_.xyz"
    for index in range(len(token)):
        for char in alphabet:
            if char != token[index]:
                forged = token[:index] + char + token[index + 1 :]
                assert signer.verify(forged) is None, forged
    for cut in range(len(token)):
        assert signer.verify(token[:cut]) is None


@pytest.mark.parametrize(
    "spelling", ["+4d2.2a.3.{mac}", "04d2.2a.3.{mac}", "4D2.2a.3.{mac}", "4_d2.2a.3.{mac}"]
)
def test_only_our_own_spelling_of_a_number_is_accepted(spelling: str) -> None:
    signer = LinkSigner(KEYS)
    mac = signer.tokens(1234, 42, 4)[3].rsplit(".", 1)[1]
    assert signer.verify(spelling.format(mac=mac)) is None


def test_a_rotated_key_still_verifies_and_a_foreign_key_does_not() -> None:
    old = LinkSigner(KEYS[:1]).tokens(5, 42, 3)[2]
    assert LinkSigner(KEYS).verify(old) is not None  # the old key is still in the keyring
    assert LinkSigner(["someone-elses-key-0123456789"]).verify(old) is None
    assert LinkSigner(KEYS).verify(f"5.2a.{MAX_POSITION + 1:x}.AAAAAAAAAAAA") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_refused_without_raising(text: str) -> None:
    assert LinkSigner(KEYS).verify(text) is None


# --- links ------------------------------------------------------------------------------


def test_every_body_link_is_tracked_but_never_the_ways_out() -> None:
    content = issue_42()
    theme = load_settings(secret_key="x" * 20, debug=True)
    full = render_issue(content, None, theme=theme)
    specs = issue_links(full, content, resolve=RESOLVE)
    hrefs = re.findall(r'href="([^"]+)"', full.html)
    body = [h for h in hrefs if h.startswith("http")]
    assert len(specs) == len(body) + hrefs.count(placeholder("web_url", html=True))
    assert {s.key.url for s in specs if s.key.section is None} == {WEB}  # header and footer
    assert all(s.resource_id is not None for s in specs if s.key.section is not None)
    assert [s.position for s in specs] == list(range(1, len(specs) + 1))
    tracked = track(full, sections=range(len(content.sections)),
                    positions={s.key: s.position for s in specs}, resolve=RESOLVE)  # fmt: skip
    remaining = re.findall(r'href="([^"]+)"', tracked.html)
    assert set(remaining) == {
        placeholder("unsubscribe_url", html=True),
        placeholder("preferences_url", html=True),
        *(placeholder(f"link_{s.position}", html=True) for s in specs),
    }
    assert tracked.html.count(placeholder("open_pixel")) == 1
    assert tracked.html.index(placeholder("open_pixel")) < tracked.html.index("</body>")
    # The plain-text part's link list points at the same tracked links; the ways out stay.
    assert "https://" not in tracked.text and placeholder("unsubscribe_url") in tracked.text


def test_a_segment_keeps_the_whole_issues_positions() -> None:
    content = issue_42()
    theme = load_settings(secret_key="x" * 20, debug=True)
    full = render_issue(content, None, theme=theme)
    specs = issue_links(full, content, resolve=RESOLVE)
    positions = {s.key: s.position for s in specs}
    only_last = (len(content.sections) - 1,)
    part = render_issue(content.with_sections(only_last), None, theme=theme)
    tracked = track(part, sections=only_last, positions=positions, resolve=RESOLVE)
    used = {int(n) for n in re.findall(r"%%link_(\d+):html%%", tracked.html)}
    expected = {s.position for s in specs if s.key.section in (*only_last, None)}
    assert used == expected
    for segment in (frozenset({"equity"}), frozenset({"assessment"})):
        chosen = select_sections(content, segment)
        rendered = render_issue(content, segment, theme=theme)
        again = track(rendered, sections=chosen, positions=positions, resolve=RESOLVE)
        assert "%%link_" in again.html and 'href="https://' not in again.html


def test_per_recipient_values_fill_every_link_and_opted_out_readers_get_the_originals() -> None:
    content = issue_42()
    theme = load_settings(secret_key="x" * 20, debug=True)
    full = render_issue(content, None, theme=theme)
    specs = issue_links(full, content, resolve=RESOLVE)
    tracked = track(full, sections=range(len(content.sections)),
                    positions={s.key: s.position for s in specs}, resolve=RESOLVE)  # fmt: skip
    template = Template.compile(tracked)
    links = TrackedLinks(issue_id=42, urls={s.position: s.key.url for s in specs},
                         signer=LinkSigner(KEYS), base_url="https://news.example.org/")  # fmt: skip
    mail = template.fill(links.values(77)).html
    assert "%%" not in mail and 'src="https://news.example.org/o/4d.2a.0.' in mail
    for url in re.findall(r'href="(https://news\.example\.org/r/[^"]+)"', mail):
        hit = LinkSigner(KEYS).verify(url.rsplit("/", 1)[1])
        assert hit is not None and hit.delivery_id == 77 and hit.position >= 1
    plain = template.fill(links.untracked()).html
    assert "/r/" not in plain and "/o/" not in plain and "https://knowledgeworks.org" in plain


# --- machine rules ---------------------------------------------------------------------

T0 = datetime(2026, 4, 3, 13, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=10)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _hit(kind: str = "click", ua: str = FIREFOX, after: float = 60.0, **kw: object) -> Hit:
    return Hit(kind, 1, 1, T0 + timedelta(seconds=after), ua, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hit", "reason"),
    [
        (_hit(), None),
        (_hit("open"), None),
        (_hit(head=True), "head request"),
        (_hit(ua=""), "no user agent"),
        (_hit("open", ua="Mozilla/5.0"), "apple privacy protection"),
        (_hit("open", apple=True), "apple privacy protection"),
        (
            _hit("open", ua="Mozilla/5.0 (via ggpht.com GoogleImageProxy)", after=2),
            "image proxy prefetch",
        ),
        (_hit("open", ua="Mozilla/5.0 (via ggpht.com GoogleImageProxy)", after=3600), None),
        (_hit(ua="curl/8.5.0"), "bot: curl"),
        (_hit(ua="Mozilla/5.0 (compatible; bingbot/2.0)"), "bot: bingbot"),
        (_hit(after=3), "scanner: clicked on arrival"),
        (_hit("open", after=3), None),  # an open right away is a reader with the mail open
    ],
)
def test_machine_rules(hit: Hit, reason: str | None) -> None:
    assert machine.classify(hit, sent_at=T0, window=WINDOW) == reason


def test_a_burst_of_different_links_is_a_scanner_but_repeats_are_not() -> None:
    walk = [Hit("click", 1, p, T0 + timedelta(seconds=0.4 * p), FIREFOX) for p in (1, 2, 3)]
    again = [Hit("click", 2, 5, T0 + timedelta(seconds=0.3 * n), FIREFOX) for n in range(5)]
    slow = [Hit("click", 3, p, T0 + timedelta(seconds=30 * p), FIREFOX) for p in (1, 2, 3)]
    assert machine.bursts([*walk, *again, *slow]) == {0, 1, 2}


# --- spool ------------------------------------------------------------------------------


def test_spool_hands_over_only_sealed_files_and_deletes_them_after_storing(tmp_path: Path) -> None:
    writer = spool.Spool(tmp_path)
    writer.append({"id": "a", "n": 1})
    stored: list[list[dict[str, object]]] = []
    assert spool.drain(tmp_path, stored.append).records == 0  # in use: left alone
    assert writer.rotate()
    writer.append({"id": "b", "n": 2})
    report = spool.drain(tmp_path, stored.append)
    assert (report.files, report.records) == (1, 1) and stored == [[{"id": "a", "n": 1}]]
    writer.close()
    assert spool.drain(tmp_path, stored.append).records == 1  # closed: its last file goes
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_failed_store_keeps_the_file_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "dead-1-2-1.jsonl").write_bytes(b'{"id":"x"}\n{"id":"y"}\n{"id": "tor')

    def down(_records: list[dict[str, object]]) -> None:
        raise RuntimeError("database unavailable")

    with pytest.raises(RuntimeError):
        spool.drain(tmp_path, down)
    assert (tmp_path / "dead-1-2-1.jsonl").exists()
    got: list[dict[str, object]] = []
    report = spool.drain(tmp_path, got.extend)
    assert [r["id"] for r in got] == ["x", "y"] and report.unreadable == 1


def test_a_file_another_process_holds_is_not_drained(tmp_path: Path) -> None:
    path = tmp_path / "other-9-9-1.jsonl"
    path.write_text(json.dumps({"id": "z"}) + "\n")
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        assert spool.drain(tmp_path, lambda _r: None).files == 0
    finally:
        os.close(fd)
    assert spool.drain(tmp_path, lambda _r: None).files == 1


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_the_cheap_escape_is_html_escape(text: str) -> None:
    import html

    from newsletter.message import escape

    assert escape(text) == html.escape(text)
