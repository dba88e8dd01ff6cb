"""Issues in the database (SQLite and PostgreSQL): import, export round trip, editing, rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from issue_helpers import ISSUE_42, SEED_ITEMS, SEED_URLS, import_library

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.issues import editor, store
from newsletter.issues.source import dump_source, load_source, parse_source
from newsletter.models import Issue, IssueItem, IssueSection
from newsletter.resources import library


@pytest.fixture
def library_db(db: Database, settings: Settings, seeds_dir: Path) -> Database:
    with db.session() as session:
        import_library(seeds_dir, session=session, settings=settings)
    return db


def _import(db: Database, text_or_path: str | Path) -> Issue:
    source = (
        load_source(text_or_path) if isinstance(text_or_path, Path) else parse_source(text_or_path)
    )
    with db.session() as session:
        return store.import_source(source, session=session)


def _export(db: Database, number: int) -> str:
    with db.session() as session:
        issue = store.get_issue(number, session=session)
        return dump_source(store.export_source(issue, session=session))


def test_issue_42_imports_from_the_sample_library(library_db: Database) -> None:
    issue = _import(library_db, ISSUE_42)
    assert (issue.number, issue.slug, issue.status) == (42, "issue-42-april-2018", "ready")
    with library_db.session() as session:
        content = store.issue_content(store.get_issue(42, session=session), session=session)
    assert [s.heading for s in content.sections] == [
        "Policy & ESSA",
        "Equity in Practice",
        "Rethinking the School Day",
    ]
    assert [i.title for i in content.items] == [s[0] for s in SEED_ITEMS]
    assert [i.url for i in content.items] == SEED_URLS
    assert [i.cta_text for i in content.items] == [s[3] for s in SEED_ITEMS]
    assert content.items[3].byline == "by Emily Liebtag and Mary Ryerse"
    assert all(i.resource_id for i in content.items)


def test_export_reimports_to_an_identical_issue(library_db: Database) -> None:
    _import(library_db, ISSUE_42)
    first = _export(library_db, 42)
    with library_db.session() as session:
        session.delete(store.get_issue(42, session=session))
    _import(library_db, first)
    assert _export(library_db, 42) == first
    _import(library_db, first)  # re-importing over itself changes nothing
    assert _export(library_db, 42) == first
    with library_db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(IssueSection)) == 3
        assert session.scalar(sa.select(sa.func.count()).select_from(IssueItem)) == 4


def test_round_trip_keeps_articles_overrides_and_status(library_db: Database) -> None:
    text = """\
number: 9
title: "Issue 9: Everything"
slug: everything
date: 2017-09-01
status: ready
subject: All the fields
preheader: Pre
intro: |-
  Line one.

  Line two with a [link](https://example.org/x).
sections:
  - heading: One
    topics: [Equity, Assessment]
    items:
      - resource: golden-ticket
        title: Golden Ticket (edited title)
        byline: by Someone
        url: https://example.org/golden
        blurb: "Our *own* blurb."
        image: {url: 'https://example.org/a.jpg', alt: Alt, caption: Cap, credit: Cred}
        cta: {text: Go, url: 'https://example.org/go'}
      - title: Editor's note
        body: "Body **text**."
  - heading: Two
    items:
      - resource: 1
"""
    _import(library_db, text)
    exported = _export(library_db, 9)
    source = parse_source(exported)
    assert source.status == "ready" and source.slug == "everything"
    first = source.sections[0].items
    assert first[0].image is not None and first[0].image.caption == "Cap"
    assert first[1].resource is None and first[1].body == "Body **text**."
    assert source.sections[1].items[0].resource != "1"  # exported as the slug
    _import(library_db, exported)
    assert _export(library_db, 9) == exported


def test_unknown_and_duplicate_resources_name_the_line(library_db: Database) -> None:
    head = "number: 5\ntitle: T\ndate: 2017-05-01\nsubject: S\nsections:\n  - heading: H\n"
    unknown = head + "    items:\n      - resource: no-such-thing\n"
    with pytest.raises(ValidationError) as info:
        _import(library_db, unknown)
    assert info.value.where == "<issue>:8" and "unknown resource" in info.value.message
    with library_db.session() as session:
        slug = library.get_resource(1, session=session).slug
    dup = head + f"    items:\n      - resource: 1\n      - resource: {slug}\n"
    with pytest.raises(ValidationError) as info:
        _import(library_db, dup)
    assert info.value.where == "<issue>:9" and "duplicate item" in info.value.message
    with library_db.session() as session:
        assert store.find_issue(5, session=session) is None


def test_a_referenced_resource_cannot_be_deleted(library_db: Database) -> None:
    _import(library_db, ISSUE_42)
    with pytest.raises(sa.exc.IntegrityError), library_db.session() as session:
        row = library.get_resource("scheduling-for-learning-not-convenience", session=session)
        library.delete_resource(row, session=session)


def test_editor_operations(library_db: Database) -> None:
    with library_db.session() as session:
        issue = editor.new_issue(
            number=43,
            title="Issue 43: May 2018",
            issue_date=date(2018, 5, 1),
            subject="May",
            session=session,
        )
        a = editor.add_item(issue, section="News", resource="1", session=session)
        b = editor.add_item(issue, section="News", resource="2", session=session)
        c = editor.add_item(issue, section="News", resource="3", position=1, session=session)
        assert [i.id for i in issue.sections[0].items] == [c.id, a.id, b.id]
        editor.move_item(issue, b.id, to=1, session=session)
        assert [i.id for i in issue.sections[0].items] == [b.id, c.id, a.id]
        editor.add_item(issue, section="Later", resource="4", session=session)
        editor.move_item(issue, c.id, to=1, section="later", session=session)
        assert [next(i.id for i in s.items) for s in issue.sections] == [b.id, c.id]
        assert [i.position for s in issue.sections for i in s.items] == [0, 1, 0, 1]
        with pytest.raises(ValidationError, match="duplicate item"):
            editor.add_item(issue, section="Other", resource="1", session=session)
        with pytest.raises(NotFoundError):
            editor.move_item(issue, 999_999, to=1, session=session)
        with pytest.raises(ValidationError, match="already exists"):
            editor.new_issue(
                number=43, title="X", issue_date=date(2018, 5, 1), subject="S", session=session
            )
        with pytest.raises(ValidationError, match="slug"):
            editor.new_issue(
                number=44,
                title="Issue 43: May 2018",
                issue_date=date(2018, 5, 1),
                subject="S",
                session=session,
            )
        editor.remove_item(issue, a.id, session=session)
        assert store.item_count(issue) == 3
    with library_db.session() as session:
        stored = store.get_issue("issue-43-may-2018", session=session)
        assert [len(s.items) for s in stored.sections] == [1, 2]


def test_a_sent_issue_is_frozen(library_db: Database) -> None:
    issue = _import(library_db, ISSUE_42)
    with library_db.session() as session:
        row = session.get(Issue, issue.id)
        assert row is not None
        row.published_at = datetime(2018, 4, 2, 12, 0, tzinfo=UTC)
    _import(library_db, ISSUE_42)  # the same content: fine, nothing changes
    changed = ISSUE_42.read_text().replace("Policy & ESSA\n", "Policy and ESSA\n", 1)
    with pytest.raises(StateError, match="frozen"):
        _import(library_db, changed)
    with pytest.raises(StateError), library_db.session() as session:
        stored = store.get_issue(42, session=session)
        editor.add_item(stored, section="More", resource="1", session=session)


def test_content_for_id_and_lookups(library_db: Database) -> None:
    issue = _import(library_db, ISSUE_42)
    with library_db.session() as session:
        content = store.content_for_id(issue.id, session=session)
        assert content.number == 42 and len(content.items) == 4
        assert [i.number for i in store.list_issues(session=session)] == [42]
        with pytest.raises(NotFoundError):
            store.get_issue(41, session=session)
        with pytest.raises(NotFoundError):
            store.content_for_id(999_999, session=session)
