"""Issue drafting in the admin: create, sections, items, overrides, preview, preflight, test, export.

Both backends; the editor's operations are ``newsletter.issues.editor``'s, so
these tests check the web wiring and the results, not the rules again.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues import store
from newsletter.issues.source import dump_source, load_source, parse_source
from newsletter.transports import MemoryMessenger
from tests.admin_helpers import (
    EDITOR,
    AdminClient,
    fast_hashing,  # noqa: F401 - autouse fixture
    load_issue_42,
    signed_in_client,
)
from tests.issue_helpers import ISSUE_42, import_library

FRAGMENT = {"X-Admin-Fragment": "1"}


def _structure(db: Database, number: int) -> list[tuple[str, list[int | None]]]:
    with db.session() as session:
        issue = store.get_issue(number, session=session)
        return [(s.heading, [i.resource_id for i in s.items]) for s in issue.sections]


def _new_issue(client: AdminClient) -> None:
    created = client.form("/admin/issues", {
        "number": "43", "title": "Issue 43: May 2018", "date": "2018-05-01",
        "subject": "Issue 43: equity by design", "preheader": "This month",
    })  # fmt: skip
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/issues/43?done=created"


def test_build_an_issue_from_library_items(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
    client = signed_in_client(db, settings, "editor")
    _new_issue(client)
    editor_page = client.get("/admin/issues/43")
    assert "the issue has no items" in editor_page.text  # preflight, inline
    assert "Add a section first" in editor_page.text
    for heading in ("Policy & ESSA", "Equity"):
        added = client.form("/admin/issues/43/sections", {"heading": heading,
                                                         "topics": ["Policy & ESSA"]})  # fmt: skip
        assert added.status_code == 303
    duplicate = client.form("/admin/issues/43/sections", {"heading": "equity"})
    assert duplicate.status_code == 422 and "already has a section" in duplicate.text
    sections = re.findall(r'id="section-(\d+)"', client.get("/admin/issues/43").text)
    policy, equity = sections
    for resource, section in ((34, policy), (36, equity), (37, equity)):
        answer = client.form("/admin/issues/43/items", {"resource_id": str(resource),
                                                        "section_id": section})  # fmt: skip
        assert answer.status_code == 303, answer.text
    again = client.form("/admin/issues/43/items", {"resource_id": "34", "section_id": equity})
    assert again.status_code == 422 and "duplicate item" in again.text
    assert _structure(db, 43) == [("Policy & ESSA", [34]), ("Equity", [36, 37])]


def _item_ids(client: AdminClient, number: int) -> list[str]:
    return re.findall(
        r'<li class="item" id="item-(\d+)"', client.get(f"/admin/issues/{number}").text
    )


def test_reorder_items_and_sections(db: Database, settings: Settings, seeds_dir: Path) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    before = _structure(db, 42)
    first, second, third, fourth = _item_ids(client, 42)
    # up past the top of "Equity in Practice" lands at the end of "Policy & ESSA"
    assert (
        client.form(f"/admin/issues/42/items/{second}/move", {"direction": "up"}).status_code == 303
    )
    after = _structure(db, 42)
    assert after[0][1] == [*before[0][1], before[1][1][0]] and after[1][1] == before[1][1][1:]
    # a fragment request answers with the live part of the editor only
    fragment = client.form(f"/admin/issues/42/items/{fourth}/move", {"direction": "up"},
                           headers=FRAGMENT)  # fmt: skip
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="sections-h"' in fragment.text and f'id="item-{fourth}"' in fragment.text
    # the first item cannot go further up: nothing changes
    client.form(f"/admin/issues/42/items/{first}/move", {"direction": "up"})
    sections = re.findall(r'id="section-(\d+)"', client.get("/admin/issues/42").text)
    client.form(f"/admin/issues/42/sections/{sections[2]}/move", {"direction": "up"})
    headings = [h for h, _ in _structure(db, 42)]
    assert headings == ["Policy & ESSA", "Rethinking the School Day", "Equity in Practice"]
    bad = client.form(f"/admin/issues/42/items/{first}/move", {"direction": "sideways"})
    assert bad.status_code == 422
    client.form(f"/admin/issues/42/items/{third}/delete")
    client.form(f"/admin/issues/42/sections/{sections[2]}/delete")
    remaining = _structure(db, 42)  # the emptied "Rethinking the School Day" is gone
    assert remaining == [
        ("Policy & ESSA", [*before[0][1], before[1][1][0]]),
        ("Equity in Practice", before[2][1]),
    ]


def test_overrides_intro_and_live_preview(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    first = _item_ids(client, 42)[0]
    saved = client.form(f"/admin/issues/42/items/{first}", {
        "blurb": "Our pick **this month**.", "image_url": "https://example.org/cover.png",
        "image_alt": "A new cover", "title": "",
    }, headers=FRAGMENT)  # fmt: skip
    assert saved.status_code == 200 and "overridden" in saved.text
    details = client.form("/admin/issues/42/details", {
        "title": "Issue 42: April 2018", "subject": "A new subject line", "date": "2018-04-02",
        "preheader": "Short", "intro": "Hello **readers**,\r\nwelcome.",
    })  # fmt: skip
    assert details.status_code == 303
    preview = client.get("/admin/issues/42/preview")
    assert preview.status_code == 200 and preview.headers["x-frame-options"] == "SAMEORIGIN"
    html = preview.text
    assert "Our pick <strong>this month</strong>." in html
    assert 'src="https://example.org/cover.png"' in html and 'alt="A new cover"' in html
    assert "Hello <strong>readers</strong>" in html
    assert "/test/unsubscribe" in html and "%%" not in html  # sample values filled
    bad_link = client.form(f"/admin/issues/42/items/{first}", {"blurb": "[x](javascript:alert(1))"})
    assert bad_link.status_code == 422 and "bad Markdown" in bad_link.text
    with db.session() as session:
        issue = store.get_issue(42, session=session)
        assert (
            issue.subject == "A new subject line"
            and issue.intro_md == "Hello **readers**,\nwelcome."
        )
        assert issue.sections[0].items[0].blurb == "Our pick **this month**."
    crlf = client.form("/admin/issues/42/details", {"title": "T", "subject": "a\r\nBcc: x@y.z",
                                                    "date": "2018-04-02"})  # fmt: skip
    assert crlf.status_code == 422 and "line break" in crlf.text


def test_preflight_problems_are_shown_inline(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    assert "ready to send" in client.get("/admin/issues/42").text
    third = _item_ids(client, 42)[2]  # a resource with no image, hence no alt text
    saved = client.form(f"/admin/issues/42/items/{third}",
                        {"image_url": "https://example.org/x.png"})  # fmt: skip
    assert saved.status_code == 303
    page = client.get("/admin/issues/42").text
    assert (
        "1 to fix" in page and "image &#39;https://example.org/x.png&#39; has no alt text" in page
    )
    client.form("/admin/issues/42/details", {"title": "Issue 42: April 2018",
                "subject": "S" * 90, "date": "2018-04-01"})  # fmt: skip
    assert "inboxes will cut it off" in client.get("/admin/issues/42").text


def test_send_a_test_to_yourself(db: Database, settings: Settings, seeds_dir: Path) -> None:
    load_issue_42(db, settings, seeds_dir)
    messenger = MemoryMessenger()
    client = signed_in_client(db, settings, "editor", messenger=messenger)
    answer = client.form("/admin/issues/42/test", {"to": "someone-else@example.org"})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=test-sent")
    assert [m.email for m in messenger.sent] == [EDITOR]  # only ever to yourself
    sent = messenger.sent[0].email_message
    assert sent.subject.startswith("[TEST] Issue 42")
    fragment = client.form("/admin/issues/42/test", headers=FRAGMENT)
    assert f"A test was sent to {EDITOR}." in fragment.text


def test_export_is_the_yaml_file_format(db: Database, settings: Settings, seeds_dir: Path) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    answer = client.get("/admin/issues/42/export")
    assert answer.headers["content-disposition"] == 'attachment; filename="042-2018-04.yaml"'
    source = parse_source(answer.text, "042-2018-04.yaml")
    with db.session() as session:
        expected = dump_source(store.export_source(store.get_issue(42, session=session),
                                                   session=session))  # fmt: skip
    assert answer.text == expected
    original = load_source(ISSUE_42)
    assert [s.heading for s in source.sections] == [s.heading for s in original.sections]
    assert yaml.safe_load(answer.text)["number"] == 42


def test_sent_or_archived_issues_are_read_only(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    assert client.form("/admin/issues/42/status", {"status": "archived"}).status_code == 303
    page = client.get("/admin/issues/42").text
    assert "This issue is archived" in page and 'action="/admin/issues/42/sections"' not in page
    refused = client.form("/admin/issues/42/sections", {"heading": "More"})
    assert refused.status_code == 409 and "archived" in refused.text
    assert client.form("/admin/issues/42/status", {"status": "nonsense"}).status_code == 422
    assert client.get("/admin/issues/999").status_code == 404
