"""The one parser against a corpus of real-world bounce formats (tests/data/bounces)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.bounces.parse import kind_for_status, our_ledger_id, parse, status_code
from newsletter.bounces.verp import Verp, VerpKind
from newsletter.models.bounces import InboundKind

CORPUS = Path(__file__).parent / "data" / "bounces"
VERP = Verp("corpus-secret-key", "bounces.example.org", extra=("fbl", "abuse", "postmaster"))


def _rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for line in (CORPUS / "expected.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            file, kind, status, recipients, verp = line.split("\t")
            rows.append((file, kind, status, recipients, verp))
    return rows


ROWS = _rows()


def test_every_corpus_file_has_an_expectation() -> None:
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*") if p.suffix in (".msg", ".txt")}
    assert files == {row[0] for row in ROWS}
    assert len(files) > 140


@pytest.mark.parametrize(
    ("file", "kind", "status", "recipients", "verp"), ROWS, ids=[r[0] for r in ROWS]
)
def test_corpus(file: str, kind: str, status: str, recipients: str, verp: str) -> None:
    parsed = parse((CORPUS / file).read_bytes(), verp=VERP)
    assert parsed.kind.value == kind, parsed.problem
    assert (parsed.status or "-") == status
    assert sorted(parsed.recipients) == sorted(r for r in recipients.split(",") if r != "-")
    if verp.isdigit():
        assert (parsed.verp.kind, parsed.verp.ledger_id) == (VerpKind.LEDGER, int(verp))
    elif verp != "-":
        assert parsed.verp.kind.value == verp


def test_the_corpus_covers_every_kind_and_the_named_servers() -> None:
    kinds = {row[1] for row in ROWS}
    assert kinds == {k.value for k in InboundKind}
    names = " ".join(row[0] for row in ROWS)
    for server in ("postfix", "exim", "sendmail", "qmail", "exchange", "gmail", "outlook", "yahoo",
                   "amazon_ses", "arf_yahoo", "arf_outlook", "arf_aol", "autoreply"):  # fmt: skip
        assert server in names


def test_original_message_id_names_the_ledger_row() -> None:
    parsed = parse((CORPUS / "modern/sendmail_dsn.msg").read_bytes(), verp=VERP)
    assert parsed.original_ids == ("<106.5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b@example.org>",)
    assert our_ledger_id(parsed.original_ids[0]) == 106
    assert our_ledger_id("<not-ours@example.org>") is None


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        ("5.1.1", None, "hard"),
        ("5.0.0", None, "hard"),
        ("5.5.0", None, "hard"),
        ("5.2.2", "mailbox full", "soft"),  # the usual exception: the address exists
        ("5.3.4", "message too big", "soft"),
        ("5.7.1", "blocked: listed at Spamhaus", "soft"),  # a block, not a dead address
        ("5.7.1", "550 5.7.1 Recipient address rejected: user unknown", "hard"),
        ("4.2.2", None, "soft"),
        ("4.4.1", None, "soft"),
    ],
)
def test_status_code_decides_hard_or_soft(status: str, text: str | None, kind: str) -> None:
    assert kind_for_status(status, text).value == kind


def test_status_code_is_read_from_server_text() -> None:
    assert status_code("550-5.1.1 The email account does not exist") == "5.1.1"
    assert status_code("Remote Server returned '550 5.1.10 RESOLVER.ADR'") == "5.1.10"
    assert status_code("version 1.2.3.4 and 10.5.1.1") is None


def test_json_line_has_exactly_the_documented_fields() -> None:
    parsed = parse((CORPUS / "modern/gmail_no_such_user.msg").read_bytes(), verp=VERP)
    line = json.loads(json.dumps(parsed.as_json("x.eml")))
    assert line == {
        "file": "x.eml", "kind": "hard", "recipients": ["henry.nobody@gmail.example"],
        "status": "5.1.1", "diagnostic": line["diagnostic"],
    }  # fmt: skip
    assert line["diagnostic"].startswith("550-5.1.1 The email account that you tried to reach")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_parse_without_raising(raw: bytes) -> None:
    parsed = parse(raw, verp=VERP)
    assert parsed.kind in InboundKind


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([r[0] for r in ROWS]), st.integers(0, 4000), st.binary(max_size=40))
def test_damaged_corpus_files_parse_without_raising(file: str, at: int, junk: bytes) -> None:
    raw = (CORPUS / file).read_bytes()
    parsed = parse(raw[:at] + junk + raw[at + len(junk) :], verp=VERP)
    assert parsed.kind in InboundKind
