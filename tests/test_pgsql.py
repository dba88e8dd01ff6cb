"""The PostgreSQL statements' parameter formatting, checked by PostgreSQL itself."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from newsletter.db import Database
from newsletter.sending.pgsql import array_literal

HOSTILE = [
    "SendGrid 202",
    None,
    "",
    "NULL",
    'say "hi"',
    "back\\slash\\",
    "{braces},commas,",
    "  padded  ",
    "line\nbreak\ttab",
    "ünïcödé ✉ 😀",
    "'single'",
    "SendGrid 202",  # repeated values share one quoted form
]


def test_array_literal_round_trips_any_text_through_postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("array literals are PostgreSQL syntax")
    with db.engine.connect() as conn:
        back = conn.execute(
            text("SELECT CAST(:a AS TEXT[]), CAST(:b AS VARCHAR[])"),
            {"a": array_literal(HOSTILE), "b": array_literal([])},
        ).one()
    assert back == (HOSTILE, [])


def test_array_literal_quotes_every_element() -> None:
    assert array_literal(["a", None, 'b"c', "d\\e"]) == '{"a",NULL,"b\\"c","d\\\\e"}'
