"""CSV import and export on both backends: bad rows, repeats, suppressions, round trips."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ImportFormatError
from newsletter.models import ConsentEvent, Subscriber
from newsletter.subscribers import service, suppression
from newsletter.subscribers.csvio import ImportReport
from newsletter.subscribers.store import CLI

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


@pytest.fixture
def topics(settings: Settings) -> list[str]:
    return [t.name for t in settings.topics]


def write(tmp_path: Path, text: str, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run(session: Session, topics: list[str], path: Path, **kw: object) -> ImportReport:
    return service.import_csv(path, session=session, allowed_topics=topics, **kw)  # type: ignore[arg-type]


def emails(session: Session) -> list[str]:
    return list(session.scalars(select(Subscriber.email).order_by(Subscriber.email)))


def test_bad_duplicate_and_suppressed_rows(
    session: Session, topics: list[str], tmp_path: Path
) -> None:
    suppression.suppress("carol@example.org", "unsubscribed", session=session)
    path = write(
        tmp_path,
        "E-mail,Full Name,Topics\n"
        f"ann@example.org,Ann Lee,{topics[0]}\n"
        "not an address,Broken,\n"
        f"bob@example.org,Bob,{topics[1]}; Astrology\n"
        f"ANN@Example.org,,{topics[2]}\n"
        "carol@example.org,Carol,\n"
        '"dan@example.org","Dan\nSmith",\n'
        "\n"
        "eve@example.org\n",
    )
    report = run(session, topics, path)
    assert (report.added, report.updated, report.suppressed) == (3, 0, 1)
    assert [(p.line, p.message.split(" ")[0]) for p in report.invalid] == [
        (3, "invalid"),
        (7, "name"),
    ]
    assert [(p.line, p.message) for p in report.duplicates] == [(5, "repeats line 2")]
    assert [p.line for p in report.warnings] == [4]  # the unknown topic, dropped
    assert emails(session) == ["ann@example.org", "bob@example.org", "eve@example.org"]
    ann = session.scalars(select(Subscriber).where(Subscriber.email == "ann@example.org")).one()
    assert sorted(ann.topics) == sorted(topics[0:1] + topics[2:3])  # repeat merged in
    assert ann.status == "confirmed"
    events = session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "import")).all()
    assert {e.source for e in events} == {f"csv:{path}"}


def test_reimport_changes_nothing_and_updates_existing(
    session: Session, topics: list[str], tmp_path: Path
) -> None:
    first = write(tmp_path, f"email,name,topics\nann@example.org,Ann,{topics[0]}\n")
    run(session, topics, first)
    again = run(session, topics, first)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    changed = write(tmp_path, f"email,name,topics\nann@example.org,Ann Lee,{topics[1]}\n", "b.csv")
    report = run(session, topics, changed)
    assert (report.added, report.updated) == (0, 1)
    ann = session.scalars(select(Subscriber)).one()
    assert (ann.name, ann.topics) == ("Ann Lee", [topics[1]])


def test_pending_import_and_promotion(session: Session, topics: list[str], tmp_path: Path) -> None:
    path = write(tmp_path, "email\nann@example.org\n")
    from newsletter.models import SubscriberStatus

    run(session, topics, path, status=SubscriberStatus.PENDING)
    assert session.scalars(select(Subscriber.status)).one() == "pending"
    assert run(session, topics, path).updated == 1
    assert session.scalars(select(Subscriber.status)).one() == "confirmed"


@pytest.mark.parametrize(
    ("header", "row", "name"),
    [
        ("Email Address;First Name;Last Name", "ann@example.org;Ann;Lee", "Ann Lee"),
        ("address\tname", "ann@example.org\tAnn", "Ann"),
        ("\ufeffEMAIL,Subscriber", "ann@example.org,Ann", "Ann"),
    ],
)
def test_columns_found_by_header(
    session: Session, topics: list[str], tmp_path: Path, header: str, row: str, name: str
) -> None:
    run(session, topics, write(tmp_path, f"{header}\n{row}\n"))
    assert session.scalars(select(Subscriber.name)).one() == name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"name,topics\nAnn,\n", "no email column"),
        (b"email\nann@exampl\xe9.org\n", "not UTF-8"),
    ],
)
def test_malformed_file_stores_nothing(
    session: Session, topics: list[str], tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFormatError, match=message):
        run(session, topics, path)
    assert emails(session) == []


def test_import_in_the_callers_transaction_rolls_back_whole(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """Without ``commit_chunks`` an error part-way leaves nothing behind."""
    topics = [t.name for t in settings.topics]
    path = write(tmp_path, "email\nann@example.org\nbob@example.org\n")

    def explode(done: int, total: int) -> None:
        if done:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError), db.session() as session:
        service.import_csv(path, session=session, allowed_topics=topics, progress=explode)
    with db.session() as session:
        assert emails(session) == []
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_chunked_import_interrupted_then_rerun_is_idempotent(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Committed chunks survive a crash; running the import again completes it exactly once."""
    from newsletter.subscribers import bulk

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 2)
    topics = [t.name for t in settings.topics]
    path = write(tmp_path, "email\n" + "".join(f"p{i}@example.org\n" for i in range(5)))
    seen: list[tuple[int, int]] = []

    def crash_after_first_chunk(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError), db.session() as session:
        service.import_csv(path, session=session, allowed_topics=topics, commit_chunks=True,
                           progress=crash_after_first_chunk)  # fmt: skip
    assert seen == [(0, 5), (2, 5)]
    with db.session() as session:
        assert emails(session) == ["p0@example.org", "p1@example.org"]
        report = service.import_csv(path, session=session, allowed_topics=topics,
                                    commit_chunks=True)  # fmt: skip
        assert (report.added, report.unchanged) == (3, 2)
        assert len(emails(session)) == 5
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 5


def test_dry_run_reports_and_stores_nothing(
    session: Session, topics: list[str], tmp_path: Path
) -> None:
    run(session, topics, write(tmp_path, "email,name\nann@example.org,Ann\n", "a.csv"))
    path = write(tmp_path, "email,name,suppressed\nann@example.org,Ann Lee,\n"
                           "bob@example.org,,\ncarol@example.org,,unsubscribed\n")  # fmt: skip
    report = run(session, topics, path, dry_run=True)
    assert (report.added, report.updated, report.suppressions_added) == (1, 1, 1)
    assert report.as_dict()["dry_run"] is True
    assert emails(session) == ["ann@example.org"]
    assert session.scalars(select(Subscriber.name)).one() == "Ann"
    assert not suppression.is_suppressed("carol@example.org", session=session)


def test_export_round_trip_keeps_suppressions_and_defuses_formulas(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    topics = [t.name for t in settings.topics]
    with db.session() as session:
        service.add("ann@example.org", session=session, actor=CLI, allowed_topics=topics,
                    name="=HYPERLINK(\"http://evil\")", topics=topics[:2], confirmed=True)  # fmt: skip
        service.add("bob@example.org", session=session, actor=CLI, allowed_topics=topics,
                    confirmed=True)  # fmt: skip
        service.erase("erased@example.org", session=session, actor=CLI)
        suppression.suppress("bob@example.org", "complaint", session=session)
        out = io.StringIO()
        assert service.export_csv(out, session=session) == 3
    text = out.getvalue()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    assert "complaint" in text and "erased" in text
    path = write(tmp_path, text, "export.csv")
    with db.session() as session:  # into a fresh list
        for row in session.scalars(select(Subscriber)):
            session.delete(row)
        session.execute(suppression.Suppression.__table__.delete())
    with db.session() as session:
        report = run(session, topics, path)
        assert (report.added, report.suppressions_added, report.invalid) == (1, 2, [])
        ann = session.scalars(select(Subscriber)).one()
        assert ann.name == '=HYPERLINK("http://evil")'
        assert sorted(ann.topics) == sorted(topics[:2])
        assert suppression.is_suppressed("bob@example.org", session=session)
        assert suppression.is_suppressed("erased@example.org", session=session)


def test_demo_csv_imports_with_its_deliberate_problems(session: Session, topics: list[str]) -> None:
    report = run(session, topics, REPO / "subscribers" / "demo.csv")
    assert report.added == 12
    assert len(report.invalid) == 1 and len(report.duplicates) == 1
    assert report.warnings == []  # every topic is a default topic
    assert run(session, topics, REPO / "subscribers" / "demo.csv").unchanged == 12


def test_unknown_columns_and_mixed_encodings_name_the_line(
    session: Session, topics: list[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "email,Shoe size,name\nann@example.org,42,Ann\n")
    report = run(session, topics, path)
    assert [(p.line, p.message) for p in report.warnings] == [
        (1, "ignored unknown column(s): shoe size")
    ]
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(
        "email,name\nbob@example.org,Zoë\n".encode() + "carl@example.org,Zoë\n".encode("latin-1")
    )
    with pytest.raises(ImportFormatError, match=r"mixed\.csv:3: not UTF-8"):
        run(session, topics, mixed)
    assert emails(session) == ["ann@example.org"]
