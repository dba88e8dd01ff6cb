"""The library in the admin: browse, filter, search, edit, and import by upload (both backends)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Resource
from newsletter.resources import library
from tests.admin_helpers import (
    AdminClient,
    fast_hashing,  # noqa: F401 - autouse fixture
    finished_job,
    signed_in_client,
)
from tests.issue_helpers import import_library

CSV = (
    b"title,url,type,summary\n"
    b"Equity by Design,https://example.org/equity-by-design,report,How schools design for equity.\n"
    b"Podcast: Learning Out Loud,https://example.org/pod,podcast,Episode one.\n"
)


def _count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(Resource.id))) or 0)


def _editor(db: Database, settings: Settings, seeds: Path) -> AdminClient:
    with db.session() as session:
        import_library(seeds, session=session, settings=settings)
    return signed_in_client(db, settings, "editor")


def test_browse_filter_and_search(db: Database, settings: Settings, seeds_dir: Path) -> None:
    client = _editor(db, settings, seeds_dir)
    everything = client.get("/admin/library").text
    assert everything.count("<tr>") - 1 == _count(db) == 38
    reports = client.get("/admin/library", params={"type": "report"}).text
    assert (
        0
        < reports.count('<span class="badge badge-type">report</span>')
        == (reports.count("<tr>") - 1)
    )
    equity = client.get("/admin/library", params={"topic": "Equity"}).text
    assert "Designing for Equity" in equity and "Golden Ticket" not in equity
    found = client.get("/admin/library", params={"q": "scheduling convenience"}).text
    assert "Scheduling for Learning, Not Convenience" in found and found.count("<tr>") == 2
    nothing = client.get("/admin/library", params={"q": "zzzzqqq"}).text
    assert "No resources match" in nothing
    punctuation = client.get("/admin/library", params={"q": "&&&"})
    assert punctuation.status_code == 200 and "at least one word" in punctuation.text
    data = client.get("/admin/api/resources", params={"q": "equity", "limit": 3}).json()
    assert 1 <= len(data) <= 3 and {"id", "title", "type", "topics"} <= set(data[0])


def test_edit_changes_only_what_the_editor_changed(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _editor(db, settings, seeds_dir)
    with db.session() as session:
        row = library.get_resource(37, session=session)
        form = {k: v or "" for k, v in library.resource_as_dict(row).items() if isinstance(v, str)}
        form.pop("slug"), form.pop("created_at")
        topics = row.topics
    unchanged = client.form("/admin/library/37", {**form, "topics": topics})
    assert unchanged.status_code == 303 and unchanged.headers["location"].endswith("done=saved")
    with db.session() as session:
        row = library.get_resource(37, session=session)
        assert not row.type_locked and not row.topics_locked  # saving as-is locks nothing
    changed = client.form("/admin/library/37", {
        **form, "type": "guide", "topics": ["Equity"], "other_topics": "Scheduling, Equity",
        "title": "Scheduling for Learning", "image_url": "https://example.org/s.png",
        "image_alt": "A timetable",
    })  # fmt: skip
    assert changed.status_code == 303
    with db.session() as session:
        row = library.get_resource(37, session=session)
        assert (row.type, row.type_locked, row.topics, row.topics_locked) == (
            "guide",
            True,
            ["Equity", "Scheduling"],
            True,
        )
        assert row.title == "Scheduling for Learning" and row.image_alt == "A timetable"
    page = client.get("/admin/library/37").text
    assert 'value="Scheduling for Learning"' in page and "Saved." not in page


def test_a_bad_edit_is_refused_and_shown(db: Database, settings: Settings, seeds_dir: Path) -> None:
    client = _editor(db, settings, seeds_dir)
    bad = client.form("/admin/library/37", {"title": "X", "url": "javascript:alert(1)"})
    assert bad.status_code == 422 and "Not done" in bad.text
    assert 'value="javascript:alert(1)"' in bad.text  # the form keeps what was typed
    empty = client.form("/admin/library/37", {"title": "  "})
    assert empty.status_code == 422 and "needs a title" in empty.text
    with db.session() as session:
        assert library.get_resource(37, session=session).title.startswith("Scheduling for")
    assert client.get("/admin/library/9999").status_code == 404


def test_import_by_upload_reports_like_the_cli(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    started = client.form("/admin/library/import", files={"files": ("list.csv", CSV, "text/csv")})
    state, first = finished_job(client, started)
    assert (state["state"], state["done"], state["total"]) == ("done", 2, 2)
    assert "Added 2, merged 0, already present 0, skipped 0." in first
    started = client.form("/admin/library/import", files={"files": ("list.csv", CSV, "text/csv")})
    _state, again = finished_job(client, started)
    assert "Added 0, merged 0, already present 2, skipped 0." in again
    assert _count(db) == 2


def test_a_bad_file_stores_nothing_and_names_itself(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    files = [
        ("files", ("good.csv", CSV, "text/csv")),
        ("files", ("../../etc/bad name.csv", b"title,url\n\xff\xfe broken,https://x.org\n", "text/csv")),
    ]  # fmt: skip
    state, answer = finished_job(client, client.form("/admin/library/import", files=files))
    assert state["state"] == "failed"
    assert "nothing was imported" in answer and "bad name.csv:2: not valid UTF-8" in answer
    assert "/tmp" not in answer and "jobs/" not in state["error"]
    assert _count(db) == 0
    none_chosen = client.form("/admin/library/import")
    assert none_chosen.status_code == 422 and "choose a file" in none_chosen.text
