"""Fuzz the resource importers: only ever ``ImportFormatError``, never a partial import.

Real files (CSV, JSON, RSS, Atom, listing pages) are mutated byte by byte with
the things that break parsers and databases (NUL, lone surrogates, invalid
UTF-8, quotes, brackets, entity declarations, characters NFKC multiplies,
fields longer than a column).  Every result is either a complete parse whose
records the library can store, or one ``ImportFormatError``; and an import
that fails leaves the database exactly as it was.  A coverage-guided atheris
run (bounded) looks further.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.cli import main as cli_main
from newsletter.config import Settings, classify_topics
from newsletter.db import Database
from newsletter.errors import ImportFormatError
from newsletter.models import Resource, ResourceTopic
from newsletter.resources import library
from newsletter.resources.parsers import check_storable, parse_file
from tests.reliability.helpers import REPO

DATA = REPO / "tests" / "data" / "import"
SEEDS = {
    "resources.csv": (DATA / "resources.csv").read_bytes(),
    "resources.json": (DATA / "resources.json").read_bytes(),
    "list.json": (DATA / "resources_list.json").read_bytes(),
    "rss.xml": (DATA / "rss2_feed.xml").read_bytes(),
    "feed.atom": (DATA / "atom_feed.atom").read_bytes(),
    **{
        f"page{i}.txt": path.read_bytes()
        for i, path in enumerate(
            sorted((REPO / "newsletter" / "sample_data" / "library").glob("*.txt"))
        )
    },
}
NASTY = [
    b"\x00",
    b"\xff\xfe",
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate: not valid UTF-8
    b"\\ud800",  # a JSON escape for a lone surrogate
    b'"',
    b'""',
    b",",
    b";",
    b"\r\n",
    b"\r",
    b"\n\n\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"<",
    b">",
    b"&",
    b"&#0;",
    b"&#xD800;",
    b"<![CDATA[",
    b"]]>",
    b'<!DOCTYPE x [<!ENTITY a "aaaa">]>',
    b"&a;",
    b"1e999",
    b"-0",
    b"null",
    b"true",
    b'"title":',
    b"title,url\n",
    b"<title>",
    b"</item>",
    b"javascript:alert(1)",
    b"https://",
    b"\xc2\xa0",
    b"\xe2\x80\xa8",  # U+2028
    b"\xef\xbb\xbf",  # a BOM in the middle
    "\ufdfa".encode() * 40,  # NFKC turns each into 18 characters
    b"T" * 600,  # longer than a title column
    b"https://example.org/" + b"p" * 2100,  # longer than a URL column
]

mutation = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(NASTY)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 200)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(1, 400)),
)


def mutate(data: bytes, steps: Sequence[tuple[str, float, object]]) -> bytes:
    for op, where, arg in steps:
        at = int(where * len(data))
        if op == "insert":
            assert isinstance(arg, bytes)
            data = data[:at] + arg + data[at:]
        elif op == "delete":
            assert isinstance(arg, int)
            data = data[:at] + data[at + arg :]
        elif op == "truncate":
            data = data[:at]
        else:
            assert isinstance(arg, int)
            data = data[:at] + data[at : at + arg] * 2 + data[at + arg :]
    return data


files = st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(mutation, min_size=1, max_size=6)).map(
    lambda pick: (pick[0], mutate(SEEDS[pick[0]], pick[1]))
)


def _outcome(path: Path) -> str:
    """ "ok" or "refused"; anything else escapes as the exception it is."""
    try:
        result = parse_file(path)
    except ImportFormatError as exc:
        assert exc.where and str(path) in exc.where, exc
        assert "\n" not in str(exc)
        return "refused"
    for record in result.records:
        assert record.title and record.origin.startswith(str(path))
        check_storable(record)
    return "ok"


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(files)
def test_mutated_files_parse_completely_or_fail_with_one_import_error(
    tmp_path_factory: pytest.TempPathFactory, file: tuple[str, bytes]
) -> None:
    name, data = file
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    _outcome(path)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from([".csv", ".json", ".xml", ".atom", ".rss", ".txt", ".md", ""]),
    st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode),
)
def test_arbitrary_bytes_under_any_extension(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
    path.write_bytes(data)
    _outcome(path)


# --------------------------------------------------------------------------- into the database


def _snapshot(db: Database) -> str:
    with db.session() as session:
        rows = session.execute(
            select(
                Resource.id, Resource.title, Resource.url, Resource.summary, Resource.type
            ).order_by(Resource.id)
        ).all()
        topics = session.execute(
            select(ResourceTopic.resource_id, ResourceTopic.topic).order_by(ResourceTopic.id)
        ).all()
    return hashlib.sha256(repr((rows, topics)).encode()).hexdigest()


def _import(db: Database, settings: Settings, paths: list[Path]) -> library.ImportReport:
    """What ``newsletter resources import`` does: parse everything, then one transaction."""
    records, _warnings = library.parse_files(paths)
    with db.session() as session:
        return library.import_records(records, session=session, topics=classify_topics(settings))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(files)
def test_an_import_either_stores_everything_or_nothing(
    db: Database,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    file: tuple[str, bytes],
) -> None:
    folder = tmp_path_factory.mktemp("import")
    good = folder / "good.csv"
    good.write_bytes(SEEDS["resources.csv"])
    name, data = file
    path = folder / name
    path.write_bytes(data)
    before = _snapshot(db)
    try:
        _import(db, settings, [good, path])
    except ImportFormatError:
        assert _snapshot(db) == before, "a failed import changed the library"
        return
    after = _snapshot(db)
    report = _import(db, settings, [good, path])  # the same files again change nothing
    assert _snapshot(db) == after and not report.added and not report.merged


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("nul.csv", b"title,url\nGood,https://example.org/good\nA\x00B,https://example.org/x\n"),
        (
            "long.csv",
            b"title,url\nGood,https://example.org/good\n"
            + b"T" * 501
            + b",https://example.org/t\n",
        ),
        ("surrogate.json", b'[{"title": "Good"}, {"title": "bad \\ud800"}]'),
        ("nfkc.json", b'[{"title": "' + "\ufdfa".encode() * 30 + b'"}]'),
        ("longurl.csv", b"title,url\nGood,https://example.org/" + b"u" * 2000 + b"\n"),
        ("topic.json", b'[{"title": "Good", "topics": ["' + b"t" * 101 + b'"]}]'),
    ],
)
def test_the_cli_refuses_unstorable_records_with_one_line_and_stores_nothing(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    good = tmp_path / "good.csv"
    good.write_bytes(SEEDS["resources.csv"])
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-not-default")
    if settings.database_schema:
        monkeypatch.setenv("NEWSLETTER_DATABASE_SCHEMA", settings.database_schema)
    before = _snapshot(db)
    with pytest.raises(SystemExit) as exited:
        cli_main(["resources", "import", str(good), str(path)])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and str(path) in err and "\n" not in err, err
    assert _snapshot(db) == before


# --------------------------------------------------------------------------- atheris


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_a_bounded_coverage_guided_atheris_run_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in SEEDS.items():
        (corpus / name).write_bytes(data)
    for path in DATA.iterdir():
        shutil.copy(path, corpus / path.name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.atheris_importers",
            "-runs=30000",
            "-max_total_time=8",
            "-timeout=10",
            "-rss_limit_mb=1024",
            str(corpus),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr and not list(tmp_path.glob("crash-*"))
