"""Editing in the admin: images (upload, fetch, library, storage), revisions, undo, restore,
drag-and-drop order, duplicating the last issue, adding a resource, the archive's dates.

Both backends.  Bad input is each refused with one line in the editor and leaves nothing
behind: no image row, no file, no revision, the item as it was.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues import revisions, store
from newsletter.media.storage import media_dir
from newsletter.models import Issue, IssueRevision, MediaImage, Resource
from tests.admin_helpers import (
    AdminClient,
    fast_hashing,  # noqa: F401 - autouse fixture
    load_issue_42,
    signed_in_client,
)
from tests.editing_helpers import bucket_server, image_server, png

FRAGMENT = {"X-Admin-Fragment": "1"}
# Images, duplication and the archive touch no backend-specific SQL: SQLite alone keeps the
# suite short; revisions and reordering (rows moved and re-created) run on both.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture(autouse=True)
def _short_fetch_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_IMAGE_FETCH_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("NEWSLETTER_IMAGE_MAX_BYTES", str(2 * 1024 * 1024))


def _first_item(db: Database) -> tuple[int, str | None, str | None]:
    with db.session() as session:
        item = store.get_issue(42, session=session).sections[0].items[0]
        return item.id, item.image_url, item.image_alt


def _counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        images = session.scalar(select(func.count()).select_from(MediaImage)) or 0
        revs = session.scalar(select(func.count()).select_from(IssueRevision)) or 0
        return images, revs


def _client(db: Database, settings: Settings, seeds_dir: Path) -> AdminClient:
    load_issue_42(db, settings, seeds_dir)
    return signed_in_client(db, settings, "editor")


def _upload(
    client: AdminClient, item_id: int, body: bytes, name: str = "photo.png", **headers: str
):  # type: ignore[no-untyped-def]
    return client.post(
        "/admin/media/upload",
        data={
            "csrf_token": client.csrf,
            "issue": "42",
            "item_id": str(item_id),
            "alt": "A classroom",
        },
        files={"file": (name, body, "image/png")},
        headers=headers,
        follow_redirects=False,
    )


@sqlite_only
def test_upload_resizes_stores_and_serves_with_a_cache_header(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    item_id, _url, _alt = _first_item(db)
    answer = _upload(client, item_id, png(1200, 800))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/admin/issues/42?done=image-used")
    _item, url, alt = _first_item(db)
    assert alt == "A classroom"
    assert (
        url is not None
        and url.startswith(f"{settings.base_url}/media/")
        and url.endswith("-880.jpg")
    )
    with db.session() as session:
        row = session.scalars(select(MediaImage)).one()
        assert (row.width, row.height, row.variants) == (1200, 800, [340, 880])
    files = sorted(p.name for p in media_dir(settings).iterdir())
    assert files == [f"{row.key}-340.jpg", f"{row.key}-880.jpg"]
    served = client.get(url.removeprefix(settings.base_url))
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert (
        "immutable" in served.headers["cache-control"]
        and "max-age=31536000" in served.headers["cache-control"]
    )

    assert Image.open(io.BytesIO(served.content)).size == (880, 587)
    # the same file again is the same library image; the media page lists it
    assert _upload(client, item_id, png(1200, 800)).status_code == 303
    assert _counts(db)[0] == 1
    library = client.get(f"/admin/media?issue=42&item={item_id}")
    assert "photo.png" in library.text and "Use this image" in library.text
    assert client.get("/media/../../etc/passwd").status_code == 404


@sqlite_only
def test_bad_uploads_are_refused_in_the_editor_and_nothing_is_saved(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    item_id, url_before, alt_before = _first_item(db)
    not_image = _upload(
        client, item_id, b"%PDF-1.4 not an image at all", name="report.pdf", **FRAGMENT
    )
    assert not_image.status_code == 422
    assert "report.pdf is not an image (PNG, JPEG, GIF or WebP)" in not_image.text
    # 30 MB: refused from its declared length, before the body is read (limit 2 MB here)
    huge = _upload(client, item_id, b"\x89PNG" + b"\0" * (30 * 1024 * 1024), **FRAGMENT)
    assert huge.status_code == 413
    assert huge.json()["detail"].startswith("the image is larger than the 2 MB")
    plain = _upload(client, item_id, b"\x89PNG" + b"\0" * (3 * 1024 * 1024))
    assert plain.status_code == 413 and "The image is larger than the 2 MB" in plain.text
    empty = _upload(client, item_id, b"", name="")
    assert empty.status_code == 422 and "choose an image" in empty.text
    assert _counts(db) == (0, 0)
    assert _first_item(db) == (item_id, url_before, alt_before)
    assert not media_dir(settings).exists() or not any(media_dir(settings).iterdir())


@sqlite_only
def test_fetch_an_image_404_and_timeout(db: Database, settings: Settings, seeds_dir: Path) -> None:
    client = _client(db, settings, seeds_dir)
    item_id, url_before, alt_before = _first_item(db)
    with image_server({"cover.png": png(600, 400)}) as base:
        form = {"issue": "42", "item_id": str(item_id), "alt": "Report cover"}
        missing = client.form(
            "/admin/media/fetch", {**form, "url": f"{base}/gone.png"}, headers=FRAGMENT
        )
        assert missing.status_code == 422
        assert f"image {base}/gone.png answered 404; nothing saved" in missing.text
        hangs = client.form("/admin/media/fetch", {**form, "url": f"{base}/hang"})
        assert hangs.status_code == 422
        assert f"image {base}/hang did not answer within 0.5 s; nothing saved" in hangs.text
        assert _counts(db) == (0, 0) and _first_item(db) == (item_id, url_before, alt_before)
        good = client.form("/admin/media/fetch", {**form, "url": f"{base}/cover.png"})
        assert good.status_code == 303, good.text
    _item, url, alt = _first_item(db)
    assert alt == "Report cover" and url is not None and url.endswith("-600.jpg")  # never enlarged
    with db.session() as session:
        assert session.scalars(select(MediaImage)).one().origin == f"{base}/cover.png"


@sqlite_only
def test_the_resources_own_image_is_proposed(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    own = "https://example.org/og-image.jpg"  # what the importer read from og:image
    with db.session() as session:
        resource = session.scalars(select(Resource).order_by(Resource.id)).first()
        assert resource is not None
        resource.image_url, resource_id = own, resource.id
    client.form("/admin/issues", {"number": "43", "title": "Issue 43", "date": "2018-05-01",
                                  "subject": "May"})  # fmt: skip
    client.form("/admin/issues/43/sections", {"heading": "News"})
    section = re.findall(r'data-section-id="(\d+)"', client.get("/admin/issues/43").text)[0]
    added = client.form("/admin/issues/43/items", {"resource_id": str(resource_id),
                                                    "section_id": section}, headers=FRAGMENT)  # fmt: skip
    assert added.status_code == 200 and "This resource has its own image" in added.text
    item_id = re.findall(r'data-item-id="(\d+)"', added.text)[0]
    assert (
        f'id="i{item_id}-fetch-url" name="url" type="url" maxlength="2000" value="{own}"'
        in added.text
    )


def _sections(db: Database) -> list[tuple[int, list[int]]]:
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        return [(s.id, [i.id for i in s.items]) for s in issue.sections]


def test_reorder_undo_history_diff_and_restore(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    before = _sections(db)
    (s1, items1), (s2, items2) = before[0], before[1]
    moved = [{"section": s2, "items": [items1[0], *items2]},
             {"section": s1, "items": items1[1:]}] + [
        {"section": s, "items": i} for s, i in before[2:]]  # fmt: skip
    answer = client.form("/admin/issues/42/order", {"order": json.dumps(moved)})
    assert answer.status_code == 303, answer.text
    after = _sections(db)
    assert after[:2] == [(s2, [items1[0], *items2]), (s1, items1[1:])]
    stale = client.form(
        "/admin/issues/42/order", {"order": json.dumps(moved[:1])}, headers=FRAGMENT
    )
    assert stale.status_code == 422 and "the page is out of date" in stale.text
    assert _sections(db) == after
    details = client.form("/admin/issues/42/details", {
        "title": "Issue 42: April 2018", "subject": "A better subject", "date": "2018-04-01",
        "preheader": "", "intro": "Hello",
    })  # fmt: skip
    assert details.status_code == 303
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        rows = revisions.history(issue, session=session)
        assert [r.label for r in rows] == [
            "edited the details",
            "reordered by drag and drop",
            "as it was",
        ]
        reorder_id, first_id = rows[1].id, rows[2].id
    history = client.get("/admin/issues/42/revisions").text
    assert "reordered by drag and drop" in history and "editor@example.org" in history
    diff = client.get(f"/admin/issues/42/revisions/{rows[0].id}").text
    assert re.search(
        r'class="diff-add"><span class="sr-only">added: </span>\+subject: A better subject', diff
    )
    # undo: back to before the details change; the sections keep the drag-and-drop order
    undone = client.form("/admin/issues/42/undo", headers=FRAGMENT)
    assert undone.status_code == 200 and "Undone" in undone.text
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        assert issue.subject != "A better subject"
        assert revisions.history(issue, session=session)[0].label == "undid: edited the details"
    assert [len(i) for _s, i in _sections(db)] == [len(i) for _s, i in after]
    # restore the first revision: the original order again (as new rows)
    restored = client.form(f"/admin/issues/42/revisions/{first_id}/restore")
    assert restored.status_code == 303 and "done=restored" in restored.headers["location"]
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        assert (
            revisions.snapshot(issue, session=session)
            == session.get(IssueRevision, first_id).source
        )
    assert [len(i) for _s, i in _sections(db)] == [len(i) for _s, i in before]
    assert client.get(f"/admin/issues/42/revisions/{reorder_id}").status_code == 200


@sqlite_only
def test_undo_with_nothing_to_undo(db: Database, settings: Settings, seeds_dir: Path) -> None:
    client = _client(db, settings, seeds_dir)
    answer = client.form("/admin/issues/42/undo")
    assert answer.status_code == 422 and "issue 42 has no change to undo" in answer.text


@sqlite_only
def test_duplicate_last_issue_and_add_a_resource(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    copied = client.form("/admin/issues/duplicate-last")
    assert (
        copied.status_code == 303
        and copied.headers["location"] == "/admin/issues/43?done=duplicated"
    )
    with db.session() as session:
        one, two = store.get_issue(42, session=session), store.get_issue(43, session=session)
        assert two.title == f"{one.title} (copy)" and two.status == "draft"
        assert [s.heading for s in two.sections] == [s.heading for s in one.sections]
        assert store.item_count(two) == store.item_count(one)
    form = {"title": "A new report on mastery", "url": "https://example.org/mastery",
            "summary": "What mastery-based learning asks of schools.", "type": "",
            "other_topics": ""}  # fmt: skip
    assert "Add a resource" in client.get("/admin/library").text
    added = client.form("/admin/library/new", form)
    assert added.status_code == 303, added.text
    again = client.form("/admin/library/new", form)
    assert again.status_code == 422 and "already in the library as #" in again.text
    bad = client.form("/admin/library/new", {**form, "url": "javascript:alert(1)", "title": "x"})
    assert bad.status_code == 422
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resource).where(
            Resource.title == "A new report on mastery")) == 1  # fmt: skip


@sqlite_only
def test_archive_shows_each_issues_date(db: Database, settings: Settings, seeds_dir: Path) -> None:
    client = _client(db, settings, seeds_dir)

    with db.session() as session:
        session.scalar(select(Issue).where(Issue.number == 42)).published_at = datetime.now(UTC)  # type: ignore[union-attr]
    page = client.get("/archive").text
    assert '<time class="muted" datetime="2018-04-01">1 April 2018</time>' in page


def test_s3_storage_puts_signed_objects_with_the_cache_header(
    make_settings: Any, seeds_dir: Path
) -> None:
    pytest.importorskip("boto3")
    with bucket_server() as (endpoint, stored):
        settings = make_settings(
            media_storage="s3", s3_bucket="news-images", s3_endpoint_url=endpoint,
            s3_region="eu-west-1", s3_access_key_id="AKIDEXAMPLE",
            s3_secret_access_key="secret-example", media_public_url="https://cdn.example.org/img",
        )  # fmt: skip
        from newsletter.db import connect

        database = connect(settings)
        try:
            client = _client(database, settings, seeds_dir)
            item_id, _url, _alt = _first_item(database)
            assert _upload(client, item_id, png(1000, 500)).status_code == 303
            _item, url, _alt = _first_item(database)
        finally:
            database.dispose()
    keys = sorted(stored)
    assert len(keys) == 2 and all(k.startswith("/news-images/") for k in keys)
    body, headers = stored[keys[-1]]
    assert Image.open(io.BytesIO(body)).size == (880, 440)
    assert headers["content-type"] == "image/jpeg"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert url == "https://cdn.example.org/img/" + keys[-1].rsplit("/", 1)[1]
    assert not (settings.var_dir / "media").exists()  # nothing on local disk


@sqlite_only
def test_a_section_image_is_uploaded_rendered_exported_and_removed(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    section_id = _sections(db)[1][0]
    answer = client.post(
        "/admin/media/upload",
        data={"csrf_token": client.csrf, "issue": "42", "section_id": str(section_id),
              "alt": "Students around a laptop"},
        files={"file": ("banner.png", png(1600, 400), "image/png")}, follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303 and f"#section-{section_id}" in answer.headers["location"]
    with db.session() as session:
        section = store.get_issue(42, session=session).sections[1]
        url, alt = section.image_url, section.image_alt
    assert alt == "Students around a laptop" and url and url.endswith("-880.jpg")
    email = client.get("/admin/issues/42/preview").text
    assert re.search(rf'<img alt="Students around a laptop"[^>]*src="{re.escape(url)}"', email)
    exported = client.get("/admin/issues/42/export").text
    assert yaml.safe_load(exported)["sections"][1]["image"] == {
        "url": url,
        "alt": "Students around a laptop",
    }
    library = client.get(f"/admin/media?issue=42&section={section_id}").text
    assert f'action="/admin/issues/42/sections/{section_id}/image"' in library
    removed = client.form(f"/admin/issues/42/sections/{section_id}/image/remove")
    assert removed.status_code == 303
    with db.session() as session:
        assert store.get_issue(42, session=session).sections[1].image_url is None
    with db.session() as session:
        image_id = session.scalars(select(MediaImage.id)).one()
    reused = client.form(
        f"/admin/issues/42/sections/{section_id}/image", {"image_id": str(image_id)}
    )
    assert reused.status_code == 303
    with db.session() as session:
        section = store.get_issue(42, session=session).sections[1]
        assert (section.image_url, section.image_alt) == (url, "Students around a laptop")


@sqlite_only
def test_duplicate_with_no_issue_says_so(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    answer = client.form("/admin/issues/duplicate-last")
    assert answer.status_code == 422 and "there is no issue to duplicate yet" in answer.text


def _headings(db: Database) -> list[tuple[str, int]]:
    with db.session() as session:
        return [(s.heading, len(s.items)) for s in store.get_issue(42, session=session).sections]


def test_typing_in_the_details_is_one_revision(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)
    base = {"title": "Issue 42: April 2018", "date": "2018-04-01", "preheader": "", "intro": ""}
    for subject in ("A", "A b", "A better subject"):  # three autosaves while typing
        assert (
            client.form("/admin/issues/42/details", {**base, "subject": subject}).status_code == 303
        )
    client.form("/admin/issues/42/sections", {"heading": "Late news"})
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        rows = revisions.history(issue, session=session)
        assert [r.label for r in rows] == [
            "added the section 'Late news'",
            "edited the details",
            "as it was",
        ]
        assert "subject: A better subject" in rows[1].source
    client.form("/admin/issues/42/undo")
    assert "Late news" not in [h for h, _ in _headings(db)]
    client.form("/admin/issues/42/undo")  # undoes the undo: the section is back
    assert "Late news" in [h for h, _ in _headings(db)]
    client.form(f"/admin/issues/42/revisions/{rows[2].id}/restore")
    with db.session() as session:
        assert store.get_issue(42, session=session).subject != "A better subject"


@sqlite_only
def test_the_media_page_takes_an_upload_of_its_own(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _client(db, settings, seeds_dir)

    def upload(body: bytes, name: str):  # type: ignore[no-untyped-def]
        return client.post("/admin/media/upload", data={"csrf_token": client.csrf, "alt": "A map"},
                           files={"file": (name, body, "image/png")}, follow_redirects=False)  # fmt: skip

    refused = upload(b"GIF89a-but-not-really", "map.gif")
    assert (
        refused.status_code == 422 and "Not done:</strong> map.gif is not an image" in refused.text
    )
    stored = upload(png(500, 300), "map.png")
    assert (
        stored.status_code == 303 and stored.headers["location"] == "/admin/media?done=image-stored"
    )
    page = client.get("/admin/media?done=image-stored").text
    assert "map.png" in page and "Alt: A map" in page and "500×300 px" in page
