"""The resource library in the database: import, merge, search, edit (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.config import Settings, classify_topics
from newsletter.db import Database
from newsletter.errors import ImportFormatError, NotFoundError, ValidationError
from newsletter.models import Resource
from newsletter.resources import library
from newsletter.resources.records import ResourceRecord

DATA = Path(__file__).parent / "data" / "import"


def _import(db: Database, settings: Settings, paths: list[Path]) -> library.ImportReport:
    records, warnings = library.parse_files(paths)
    report = library.ImportReport(skipped=warnings)
    with db.session() as session:
        library.import_records(
            records, session=session, topics=classify_topics(settings), report=report
        )
    return report


def _count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Resource)) or 0)


def test_seed_import_yields_each_distinct_resource_once(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    seeds = sorted(seeds_dir.glob("*.txt"))
    report = _import(db, settings, seeds)
    assert len(report.added) == 38  # 39 records, "From Vision to Reality" listed twice
    assert len(report.added) + len(report.merged) + len(report.unchanged) == 39
    assert any(w.where.endswith("000_011b8b86067026e5.txt:2") for w in report.skipped)
    assert _count(db) == 38
    with db.session() as session:
        vision = session.scalars(
            select(Resource).where(Resource.title.like("From Vision to Reality%"))
        ).all()
        assert len(vision) == 1
        podcast = session.scalar(
            select(Resource).where(Resource.title == "Envisioning the Graduate of the Future")
        )
        assert podcast is not None and podcast.type == "course" and podcast.summary_truncated
        brief = session.scalar(
            select(Resource).where(Resource.title.like("State Strategies to Develop%"))
        )
        assert brief is not None and brief.type == "issue brief" and brief.topics

    again = _import(db, settings, seeds)
    assert again.added == [] and again.merged == []
    assert len(again.unchanged) == 39
    assert _count(db) == 38


def test_merge_keeps_the_richer_fields(db: Database, settings: Settings) -> None:
    topics = classify_topics(settings)
    short = ResourceRecord(
        title="Golden Ticket", summary="This case study tells…", summary_truncated=True
    )
    full = ResourceRecord(
        title="Golden  ticket",
        summary="This case study tells the whole story.",
        url="https://example.org/golden-ticket",
        source="Lawrence Public Schools",
    )
    with db.session() as session:
        library.import_records([short], session=session, topics=topics)
    with db.session() as session:
        report = library.import_records([full], session=session, topics=topics)
    assert report.merged == ["Golden  ticket"]
    with db.session() as session:
        row = library.get_resource("https://example.org/golden-ticket/", session=session)
        assert row.summary == "This case study tells the whole story." and not row.summary_truncated
        assert row.source == "Lawrence Public Schools" and row.title == "Golden Ticket"
    with db.session() as session:  # the truncated copy arriving later does not overwrite
        library.import_records([short], session=session, topics=topics)
        assert library.get_resource("golden-ticket", session=session).summary.endswith("story.")


def test_same_title_different_urls_are_two_resources(db: Database, settings: Settings) -> None:
    topics = classify_topics(settings)
    with db.session() as session:
        library.import_records(
            [
                ResourceRecord(title="Quality Counts", url="https://a.example/2017"),
                ResourceRecord(title="Quality Counts", url="https://a.example/2018"),
            ],
            session=session,
            topics=topics,
        )
        slugs = sorted(session.scalars(select(Resource.slug)))
    assert slugs == ["quality-counts", "quality-counts-2"]


@pytest.mark.parametrize(
    "name", ["bad_xml.xml", "missing_title_column.csv", "latin1.csv", "numbers.json", "empty.txt"]
)
def test_malformed_file_stores_nothing_and_says_where(
    db: Database, settings: Settings, seeds_dir: Path, name: str
) -> None:
    bad = DATA / name
    good = seeds_dir / "001_ecb164fccca68c19.txt"
    with pytest.raises(ImportFormatError) as info:
        _import(db, settings, [good, bad])
    assert bad.name in str(info.value)
    assert "\n" not in str(info.value)
    assert _count(db) == 0


def test_feed_csv_and_json_import(db: Database, settings: Settings) -> None:
    names = [
        "rss2_feed.xml",
        "atom_feed.atom",
        "resources.csv",
        "semicolon_bom.csv",
        "resources.json",
        "resources_list.json",
    ]
    valid = [DATA / n for n in names]
    report = _import(db, settings, valid)
    assert report.added and _count(db) == len(report.added)
    with db.session() as session:
        assert all(r.type for r in session.scalars(select(Resource)))


def test_search_ranks_title_matches_first(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    _import(db, settings, sorted(seeds_dir.glob("*.txt")))
    with db.session() as session:
        hits = library.search_resources("restorative justice", session=session)
        assert hits and hits[0].title == "Restorative Justice: Resources for Schools"
        assert (
            library.search_resources("teens (makerspaces) && OR", session=session)[0].title
            == "Let Teens Lead in Makerspaces"
        )
        assert library.search_resources("zzzyyyxxx", session=session) == []
        with pytest.raises(ValidationError):
            library.search_resources("!!!", session=session)


def test_list_filters_by_topic_and_type(db: Database, settings: Settings, seeds_dir: Path) -> None:
    _import(db, settings, sorted(seeds_dir.glob("*.txt")))
    with db.session() as session:
        briefs = library.list_resources(session=session, type_="issue brief")
        assert briefs and all(r.type == "issue brief" for r in briefs)
        some_topic = briefs[0].topics[0]
        tagged = library.list_resources(session=session, topic=some_topic.upper())
        assert briefs[0].id in {r.id for r in tagged}


def test_editor_overrides_survive_reimport(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    seeds = sorted(seeds_dir.glob("*.txt"))
    _import(db, settings, seeds)
    with db.session() as session:
        row = library.get_resource("golden-ticket", session=session)
        library.edit_resource(row, {"type": "video", "topics": ["Equity"]}, session=session)
    _import(db, settings, seeds)
    with db.session() as session:
        row = library.get_resource("golden-ticket", session=session)
        assert row.type == "video" and row.topics == ["Equity"]


def test_add_edit_delete_and_errors(db: Database, settings: Settings) -> None:
    topics = classify_topics(settings)
    with db.session() as session:
        row = library.add_resource(
            ResourceRecord(
                title="Toolkit for Tomorrow", summary="This toolkit helps.", url="https://e.org/t"
            ),
            session=session,
            topics=topics,
        )
        assert row.type == "toolkit"
        with pytest.raises(ValidationError, match="already in the library"):
            library.add_resource(
                ResourceRecord(title="Other", url="https://E.org/t/"),
                session=session,
                topics=topics,
            )
        with pytest.raises(ValidationError, match="unknown type"):
            library.edit_resource(row, {"type": "novel"}, session=session)
        library.delete_resource(row, session=session)
        with pytest.raises(NotFoundError):
            library.get_resource("toolkit-for-tomorrow", session=session)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.txt")}


def test_bundled_sample_library_is_the_shared_seed_set() -> None:
    """``make demo`` uses a bundled copy of ../shared/seeds; it must not drift from the original.

    The seeds' digests ship in tests/data/seeds.sha256, so the check runs in any
    clone; beside ../shared the originals are checked against them too.
    """
    from tests.conftest import BUNDLED_SEEDS, SHARED_SEEDS

    manifest = {}
    for line in (Path(__file__).parent / "data" / "seeds.sha256").read_text().splitlines():
        digest, name = line.split()
        manifest[name] = digest
    assert len(manifest) == 5 and _digests(BUNDLED_SEEDS) == manifest
    if SHARED_SEEDS.is_dir():
        assert _digests(SHARED_SEEDS) == manifest


def test_added_by_hand_the_url_decides(db: Database, settings: Settings) -> None:
    """Same title, no URL (an import would merge into it) vs a new URL: a new resource."""
    topics = classify_topics(settings)
    with db.session() as session:
        bare = library.add_resource(ResourceRecord(title="Equity by Design"), session=session,
                                    topics=topics)  # fmt: skip
        linked = library.add_resource(
            ResourceRecord(title="Equity by Design", url="https://e.org/equity"),
            session=session, topics=topics,
        )  # fmt: skip
        assert linked.id != bare.id and linked.url == "https://e.org/equity"
        with pytest.raises(ValidationError, match=f"already in the library as #{linked.id}"):
            library.add_resource(ResourceRecord(title="Other", url="https://E.org/equity/"),
                                 session=session, topics=topics)  # fmt: skip
        with pytest.raises(ValidationError, match="already in the library"):
            library.add_resource(ResourceRecord(title="equity by design"), session=session,
                                 topics=topics)  # fmt: skip


def _snapshot(db: Database) -> list[tuple[object, ...]]:
    with db.session() as session:
        rows = session.scalars(select(Resource).order_by(Resource.id)).all()
        return [(r.slug, r.title, r.url, r.summary, r.type, tuple(r.topics)) for r in rows]


def test_chunked_bulk_import_decides_like_one_chunk(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merges across chunk boundaries, repeated titles' slugs, a URL merged in later."""
    from newsletter.resources import bulk

    records = [
        ResourceRecord(title="Quality Counts", summary="Short…", summary_truncated=True),
        ResourceRecord(title="Student Agency Guide", url="https://a.example/agency"),
        ResourceRecord(title="Quality Counts", url="https://a.example/qc", summary="Full."),
        ResourceRecord(title="Quality Counts", url="https://a.example/qc-2018"),
        ResourceRecord(title="Another", url="https://a.example/agency/?utm_source=x"),
        ResourceRecord(title="Quality Counts", url="https://a.example/qc-2019"),
    ]
    topics = classify_topics(settings)
    with db.session() as session:
        whole = library.import_records(records, session=session, topics=topics)
    expected = _snapshot(db)
    with db.session() as session:
        session.execute(Resource.__table__.delete())
    monkeypatch.setattr(bulk, "CHUNK_ROWS", 2)
    with db.session() as session:
        chunked = library.import_records(records, session=session, topics=topics,
                                         commit_chunks=True)  # fmt: skip
    counts = (len(chunked.added), len(chunked.merged), len(chunked.unchanged))
    assert counts == (len(whole.added), len(whole.merged), len(whole.unchanged)) == (4, 1, 1)
    assert [row[1:] for row in _snapshot(db)] == [row[1:] for row in expected]
    assert [row[0] for row in _snapshot(db)] == [
        "quality-counts", "student-agency-guide", "quality-counts-2", "quality-counts-3",
    ]  # fmt: skip
    with db.session() as session:
        preview = library.import_records(records, session=session, topics=topics, dry_run=True)
    assert (len(preview.added), len(preview.unchanged)) == (0, 6)
