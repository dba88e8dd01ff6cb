"""Sources that fill the library, against a real local website (``site_server``).

Polling: conditional GET (304 on a matching ETag), a feed that changes, garbage,
a slow server, a 10 MB answer, an unreachable host, private addresses refused;
the seed library's listing pages polled twice add nothing the second time; the
inbox accepts into the library and remembers rejections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.cli import main
from newsletter.config import Settings, classify_topics
from newsletter.db import Database
from newsletter.fetching import Fetcher
from newsletter.models import Resource
from newsletter.models.sources import ItemState, Source, SourceItem
from newsletter.resources.classify import normalise_url
from newsletter.sources import inbox, poll, registry
from tests.site_server import Page, Site, rss, serving
from tests.webhook_receivers import down_url

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FEED = "/feed.xml"


@pytest.fixture
def site() -> Iterator[Site]:
    with serving(Site()) as running:
        yield running


def local(make_settings: Callable[..., Settings], **more: object) -> Settings:
    """Settings that may fetch from 127.0.0.1, with a short timeout and a 1 MB limit."""
    return make_settings(fetch_allow_private_addresses=True, fetch_timeout_seconds=0.5,
                         fetch_max_bytes=1_000_000, **more)  # fmt: skip


@pytest.fixture
def fetch_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "fetch_allow_private_addresses": True, "fetch_timeout_seconds": 0.5,
        "fetch_max_bytes": 1_000_000,
    })  # fmt: skip


def _add(db: Database, url: str, every: int = 360) -> int:
    with db.session() as session:
        return registry.add_source(url, session=session, every_minutes=every, now=NOW).id


def _poll(db: Database, settings: Settings, source_id: int) -> poll.PollResult:
    (result,) = poll.poll_many([source_id], db=db, settings=settings, now=lambda: NOW)
    return result


def _items(db: Database) -> list[tuple[str, str | None, str]]:
    with db.session() as session:
        rows = session.scalars(select(SourceItem).order_by(SourceItem.id))
        return [(r.title, r.url, r.state) for r in rows]


def test_a_feed_is_polled_with_its_etag_and_only_new_items_are_added(
    db: Database, fetch_settings: Settings, site: Site
) -> None:
    site.pages[FEED] = Page(rss(("One", "https://example.org/one"),
                                ("Two", "https://example.org/two?utm_source=feed")),
                            content_type="application/rss+xml", etag='"v1"')  # fmt: skip
    sid = _add(db, site.url(FEED))
    first = _poll(db, fetch_settings, sid)
    assert (first.result, first.added, first.known) == ("ok", 2, 0)
    assert site.seen(FEED)[0].headers["User-Agent"] == fetch_settings.fetch_user_agent

    again = _poll(db, fetch_settings, sid)  # same ETag: 304, nothing parsed or added
    assert site.seen(FEED)[1].headers["If-None-Match"] == '"v1"'
    assert (again.result, again.added, again.message) == ("unchanged", 0, "not modified (304)")

    site.pages[FEED] = Page(rss(("Three", "https://example.org/three"),
                                ("One", "https://example.org/one"),
                                ("Two again", "https://example.org/two")),
                            content_type="application/rss+xml", etag='"v2"')  # fmt: skip
    changed = _poll(db, fetch_settings, sid)
    assert (changed.result, changed.added, changed.known) == ("ok", 1, 2)
    assert [t for t, _, _ in _items(db)] == ["One", "Two", "Three"]
    with db.session() as session:
        source = session.get(Source, sid)
        assert source is not None
        assert (source.kind, source.etag, source.last_result) == ("feed", '"v2"', "ok")
        assert source.last_message == "1 new, 2 already known"
        assert source.next_poll_at == NOW + timedelta(hours=6)


def test_last_modified_is_sent_back_as_if_modified_since(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    stamp = "Mon, 02 Mar 2026 08:00:00 GMT"
    site.pages[FEED] = Page(rss(("One", "https://example.org/one")), last_modified=stamp)
    sid = _add(sqlite_db, site.url(FEED))
    settings = local(make_settings)
    assert _poll(sqlite_db, settings, sid).added == 1
    again = _poll(sqlite_db, settings, sid)
    assert site.seen(FEED)[1].headers["If-Modified-Since"] == stamp
    assert "If-None-Match" not in site.seen(FEED)[1].headers
    assert again.result == "unchanged"


def test_garbage_slow_huge_and_unreachable_sources_fail_in_one_line_and_lose_nothing(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    settings = local(make_settings)
    site.pages[FEED] = Page(rss(("Kept", "https://example.org/kept")),
                            content_type="application/rss+xml", etag='"v1"')  # fmt: skip
    sid = _add(sqlite_db, site.url(FEED))
    assert _poll(sqlite_db, settings, sid).added == 1
    traps = {
        "<rss><channel><item><title>broken": "not well-formed XML",
        "<<<garbage \x00 not a feed": "not well-formed XML",
    }
    for body, needle in traps.items():
        site.pages[FEED] = Page(body.encode(), content_type="application/rss+xml", etag='"bad"')
        failed = _poll(sqlite_db, settings, sid)
        assert failed.result == "error" and needle in failed.message, failed.message
        assert "\n" not in failed.message and failed.message.startswith(site.url(FEED))
    site.pages[FEED] = Page(b"<rss/>", content_type="application/rss+xml", slow=2.0)
    slow = _poll(sqlite_db, settings, sid)
    assert slow.result == "error" and "no answer within 0.5 s" in slow.message
    site.pages[FEED] = Page(content_type="application/rss+xml", stream_bytes=10_000_000)
    huge = _poll(sqlite_db, settings, sid)
    assert huge.result == "error" and "larger than 1,000,000 bytes" in huge.message
    down = _add(sqlite_db, down_url())
    unreachable = _poll(sqlite_db, settings, down)
    assert unreachable.result == "error" and "cannot fetch" in unreachable.message
    with sqlite_db.session() as session:
        source = session.get(Source, sid)
        assert source is not None and source.etag == '"v1"'  # validators of the last good poll
        assert (source.last_result, source.kind) == ("error", "feed")
    assert _items(sqlite_db) == [("Kept", "https://example.org/kept", "new")]


def test_private_addresses_are_refused_unless_allowed(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    site.pages[FEED] = Page(rss(("One", "https://example.org/one")))
    strict = make_settings(fetch_timeout_seconds=0.5)
    sid = _add(sqlite_db, site.url(FEED))
    refused = _poll(sqlite_db, strict, sid)
    assert refused.result == "error" and "fetch_allow_private_addresses" in refused.message
    # A public-looking name that resolves to loopback is refused the same way.
    with Fetcher(strict, resolve=lambda host, port: ["127.0.0.1"]) as fetcher:
        other = _add(sqlite_db, f"http://feeds.example.org:{site.port}{FEED}")
        result = poll.poll_source(other, db=sqlite_db, fetcher=fetcher, now=NOW)
    assert "private or loopback address (127.0.0.1)" in result.message
    assert site.requests == []  # nothing was ever sent to the private address


def test_seed_listing_pages_polled_twice_add_nothing_the_second_time(
    db: Database, fetch_settings: Settings, site: Site, seeds_dir: Path
) -> None:
    ids = []
    for page in sorted(seeds_dir.glob("*.txt")):
        site.pages[f"/{page.name}"] = Page(page.read_bytes(), content_type="text/plain")
        ids.append(_add(db, site.url(f"/{page.name}")))
    first = poll.poll_many(ids, db=db, settings=fetch_settings, now=lambda: NOW)
    assert all(r.result == "ok" for r in first), [r.message for r in first]
    added = sum(r.added for r in first)
    assert added > 20
    second = poll.poll_many(ids, db=db, settings=fetch_settings, now=lambda: NOW)
    assert [r.added for r in second] == [0] * len(ids)
    assert sum(r.known for r in second) >= added
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(SourceItem)) == added
        kinds = set(session.scalars(select(Source.kind)))
        new = [i.id for i in inbox.list_items(session=session)]
        report = inbox.accept(new, session=session, topics=classify_topics(fetch_settings),
                              actor="editor@example.org", now=NOW)  # fmt: skip
    assert kinds == {"listing"} and len(report.added) + len(report.merged) == added
    third = poll.poll_many(ids, db=db, settings=fetch_settings, now=lambda: NOW)
    assert sum(r.added for r in third) == 0  # accepted items are in the library now
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resource)) == len(report.added)


def test_inbox_dedupes_against_the_library_and_remembers_rejections(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    settings = local(make_settings)
    with sqlite_db.session() as session:
        session.add(Resource(slug="already", title="Already Here", title_key="already here",
                             url="https://example.org/already",
                             url_key=normalise_url("https://example.org/already")))  # fmt: skip
    site.pages[FEED] = Page(rss(("Already here, retitled", "https://example.org/already/"),
                                ("Keep me", "https://example.org/keep"),
                                ("Drop me", "https://example.org/drop")))  # fmt: skip
    sid = _add(sqlite_db, site.url(FEED))
    assert (_poll(sqlite_db, settings, sid).added, _items(sqlite_db)[0][0]) == (2, "Keep me")
    with sqlite_db.session() as session:
        keep, drop = (i.id for i in sorted(inbox.list_items(session=session), key=lambda i: i.id))
        inbox.accept([keep], session=session, topics=[], actor="e", now=NOW)
        assert inbox.reject([drop], session=session, actor="e", now=NOW) == 1
    assert _poll(sqlite_db, settings, sid).added == 0  # rejected stays rejected
    assert [s for _, _, s in _items(sqlite_db)] == [ItemState.ACCEPTED, ItemState.REJECTED]
    with sqlite_db.session() as session:
        titles = sorted(session.scalars(select(Resource.title)))
    assert titles == ["Already Here", "Keep me"]


def test_sitemaps_list_their_urls(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    site.pages["/sitemap.xml"] = Page(
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>https://example.org/resources/designing-for-equity/</loc>"
        b"<lastmod>2026-02-01</lastmod></url>"
        b"<url><loc>https://example.org/resources/scheduling_for_learning.html</loc></url>"
        b"</urlset>",
        content_type="application/xml",
    )
    sid = _add(sqlite_db, site.url("/sitemap.xml"))
    assert _poll(sqlite_db, local(make_settings), sid).added == 2
    assert [t for t, _, _ in _items(sqlite_db)] == ["Designing for equity",
                                                    "Scheduling for learning"]  # fmt: skip


def test_only_due_sources_are_polled_by_the_scheduler_job(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    settings = local(make_settings)
    site.pages[FEED] = Page(rss(("One", "https://example.org/one")))
    due, later = _add(sqlite_db, site.url(FEED)), _add(sqlite_db, site.url("/other.xml"))
    with sqlite_db.session() as session:
        row = session.get(Source, later)
        assert row is not None
        row.next_poll_at = NOW + timedelta(hours=1)
    results = poll.poll_due(sqlite_db, settings, now=lambda: NOW)
    assert [r.source_id for r in results] == [due]
    assert poll.poll_due(sqlite_db, settings, now=lambda: NOW + timedelta(minutes=5)) == []


# --- the CLI ---------------------------------------------------------------------------------

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_FETCH_ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.setenv("NEWSLETTER_FETCH_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("COLUMNS", "250")

    def invoke(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err


def test_cli_add_list_poll_inbox_remove(run: Run, site: Site, tmp_path: Path) -> None:
    site.pages[FEED] = Page(rss(("One", "https://example.org/one")), etag='"a"')
    code, out, err = run("sources", "add", site.url(FEED), "--every", "6h")
    assert code == 0, err
    assert "added source #1" in out and "first poll: 1 new, 0 already known" in out
    code, out, _ = run("sources", "list")
    assert code == 0 and "feed" in out and "6h" in out and "unchanged" not in out
    code, out, _ = run("sources", "poll", "1")
    assert code == 0 and "unchanged, not modified (304)" in out
    code, out, _ = run("sources", "list", "--json")
    assert '"last_result": "unchanged"' in out and '"waiting": 1' in out
    code, out, _ = run("sources", "inbox")
    assert code == 0 and "One" in out
    code, out, _ = run("sources", "accept", "1")
    assert code == 0 and "added 1" in out
    code, out, _ = run("resources", "list")
    assert "One" in out
    code, out, _ = run("sources", "remove", "1", "--yes")
    assert code == 0 and run("sources", "list", "--json")[1].strip() == "[]"
    assert "One" in run("resources", "list")[1]  # what it brought stays


def test_cli_bad_input_is_one_line_and_stores_nothing(run: Run, site: Site) -> None:
    code, out, err = run("sources", "add", down_url())
    assert code == 1 and "added" not in out  # a source that fails its first poll is not kept
    _one_line_error(err, "source not added", "cannot fetch")
    assert run("sources", "list", "--json")[1].strip() == "[]"
    site.pages["/garbage"] = Page(b"<rss><channel><item>", content_type="application/rss+xml")
    code, _, err = run("sources", "add", site.url("/garbage"))
    assert code == 1
    _one_line_error(err, "source not added", "not well-formed XML")
    site.pages["/words"] = Page(b"just some words\n", content_type="text/plain")
    code, _, err = run("sources", "add", site.url("/words"))
    _one_line_error(err, "source not added: nothing found there", "no resources found")
    code, _, err = run("sources", "add", "ftp://example.org/feed")
    _one_line_error(err, "must start with http:// or https://")
    code, _, err = run("sources", "add", "https://example.org/feed", "--every", "often")
    _one_line_error(err, "--every 'often'")
    code, _, err = run("sources", "poll", "9")
    assert code == 1
    _one_line_error(err, "no source #9")
    site.pages[FEED] = Page(rss(("One", "https://example.org/one")))
    assert run("sources", "add", site.url(FEED))[0] == 0
    site.pages[FEED] = Page(b"garbage", content_type="application/rss+xml", status=500)
    code, _, err = run("sources", "poll", "1")
    assert code == 1 and "HTTP 500" in err and "Traceback" not in err
    assert '"waiting": 1' in run("sources", "list", "--json")[1]


def test_the_scheduler_jobs_poll_due_sources_and_check_stale_links(
    sqlite_db: Database, make_settings: Callable[..., Settings], site: Site
) -> None:
    from newsletter.scheduling.runner import RunOptions, SchedulerRuntime

    settings = local(make_settings)
    site.pages[FEED] = Page(rss(("One", site.url("/one"))))
    site.pages["/one"] = Page(b"here")
    sid = _add(sqlite_db, site.url(FEED))
    runtime = SchedulerRuntime(sqlite_db, settings, clock=lambda: NOW,
                               options=RunOptions(worker=False, webhooks=False))  # fmt: skip
    runtime.poll_sources()
    with sqlite_db.session() as session:
        source = session.get(Source, sid)
        assert source is not None and source.last_result == "ok"
        new = [i.id for i in inbox.list_items(session=session)]
        inbox.accept(new, session=session, topics=[], actor="e", now=NOW)
    runtime.check_links()
    with sqlite_db.session() as session:
        row = session.scalar(select(Resource))
        assert row is not None and (row.link_status, row.link_checked_at) == ("ok", NOW)
