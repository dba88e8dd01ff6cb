"""Link health against a real local site: ok, dead, moved (a redirect chain), a redirect loop,
HEAD refused, a slow server; preflight warns about each dead or moved link of an issue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Resource
from newsletter.resources import links
from newsletter.resources.classify import normalise_url
from newsletter.sending import service
from tests.issue_helpers import SEED_URLS
from tests.site_server import Page, Site, serving

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EARLIER = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def site() -> Iterator[Site]:
    with serving(Site()) as running:
        running.pages.update({
            "/ok": Page(b"fine"),
            "/a": Page(status=301, location="/b"),
            "/b": Page(status=302, location="/c"),
            "/c": Page(b"the new home"),
            "/loop1": Page(status=301, location="/loop2"),
            "/loop2": Page(status=302, location="/loop1"),
            "/nohead": Page(b"GET only", head=False),
            "/slow": Page(b"late", slow=2.0),
            "/robots-out": Page(status=403),
        })  # fmt: skip
        yield running


def _add(db: Database, *urls: str) -> None:
    with db.session() as session:
        rows = {u: Resource(slug=f"r{n}", title=f"Resource {n}", title_key=f"resource {n}", url=u,
                            url_key=normalise_url(u), created_at=EARLIER, updated_at=EARLIER)
                for n, u in enumerate(urls)}  # fmt: skip
        session.add_all(rows.values())


def test_each_link_is_marked_ok_dead_or_moved(db: Database, settings: Settings, site: Site) -> None:
    settings = settings.model_copy(
        update={"fetch_allow_private_addresses": True, "fetch_timeout_seconds": 0.5}
    )
    paths = ["/ok", "/gone", "/a", "/loop1", "/nohead", "/slow", "/robots-out"]
    _add(db, *(site.url(p) for p in paths))
    seen: list[tuple[int, int]] = []
    report = links.check_links(db, settings, now=lambda: NOW,
                               progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert (report.checked, report.ok, report.dead, report.moved, report.unknown) == (7, 2, 3, 1, 1)
    assert seen[-1] == (7, 7)
    with db.session() as session:
        rows = {r.url: r for r in session.scalars(select(Resource))}
        got = {p: (rows[site.url(p)].link_status, rows[site.url(p)].link_detail) for p in paths}
        moved = rows[site.url("/a")]
        assert moved.link_final_url == site.url("/c")
        assert all(r.link_checked_at == NOW for r in rows.values())
        assert all(r.updated_at == EARLIER for r in rows.values())  # a check is not an edit
    assert got == {
        "/ok": ("ok", "HTTP 200"),
        "/gone": ("dead", "HTTP 404"),
        "/a": ("moved", "HTTP 200 after 2 redirects"),
        "/loop1": ("dead", f"redirect loop at {site.url('/loop1')}"),
        "/nohead": ("ok", "HTTP 200"),
        "/slow": ("dead", "no answer within 0.5 s"),
        "/robots-out": (None, "HTTP 403 (the site turns robots away)"),
    }
    assert [r.method for r in site.requests if r.path == "/nohead"] == ["HEAD", "GET"]
    # The scheduled run only checks what was not checked within link_check_hours.
    again = links.check_links(db, settings, now=lambda: NOW + timedelta(minutes=10),
                              older_than=timedelta(hours=24))  # fmt: skip
    assert again.checked == 0


def test_preflight_warns_about_dead_and_moved_links_before_scheduling(
    issue42: Database, settings: Settings
) -> None:
    with issue42.session() as session:
        session.add_all([
            Resource(slug="dead-one", title="Dead", title_key="dead", url=SEED_URLS[0],
                     url_key=normalise_url(SEED_URLS[0]), link_status="dead",
                     link_detail="HTTP 404", link_checked_at=NOW),
            Resource(slug="moved-one", title="Moved", title_key="moved", url=SEED_URLS[1],
                     url_key=normalise_url(SEED_URLS[1]), link_status="moved",
                     link_final_url="https://example.org/new-home", link_checked_at=NOW),
            Resource(slug="fine-one", title="Fine", title_key="fine", url=SEED_URLS[2],
                     url_key=normalise_url(SEED_URLS[2]), link_status="ok", link_checked_at=NOW),
        ])  # fmt: skip
    found = service.review(issue42, settings, 42, [], now=NOW)
    link_warnings = [w for w in found.warnings if w.startswith("link ")]
    assert link_warnings == [
        f"link {SEED_URLS[0]} is dead (HTTP 404)",
        f"link {SEED_URLS[1]} has moved to https://example.org/new-home; update the resource",
    ]
    assert found.problems == []  # warnings, never blocking


def test_cli_check_links_lists_dead_and_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    site: Site,
) -> None:  # fmt: skip
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_FETCH_ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0), *capsys.readouterr()
        return 0, *capsys.readouterr()

    for n, path in enumerate(["/ok", "/gone", "/a"]):
        assert run("resources", "add", "--title", f"R{n}", "--url", site.url(path))[0] == 0
    code, out, err = run("resources", "check-links")
    assert code == 0, err
    assert "checked 3: 1 ok, 1 dead, 1 moved, 0 inconclusive" in out
    assert f"dead  #2 {site.url('/gone')} (HTTP 404)" in out
    assert f"moved #3 {site.url('/a')} -> {site.url('/c')}" in out
