"""``newsletter subscribers`` and ``newsletter serve`` from the command line (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-test-secret")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_and_confirmation_email(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subscribers", "add", "Ann@Example.org", "--name", "Ann",
                       "--topic", "equity")  # fmt: skip
    assert code == 0 and "ann@example.org (pending)" in out and "confirmation email sent" in out
    outbox = list((cli_env / "var" / "outbox").glob("*.eml"))
    assert len(outbox) == 1 and b"/confirm/" in outbox[0].read_bytes()
    run(capsys, "subscribers", "add", "bob@example.org", "--confirmed")
    code, out, _ = run(capsys, "subscribers", "list", "--status", "confirmed", "--json")
    rows = json.loads(out)
    assert [r["email"] for r in rows] == ["bob@example.org"]
    assert len(list((cli_env / "var" / "outbox").glob("*.eml"))) == 1  # --confirmed: no email


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["subscribers", "add", "not-an-address"], "invalid email address"),
        (["subscribers", "add", "a@example.org", "--topic", "Astrology"], "unknown topic"),
        (["subscribers", "suppress", "a@example.org", "--reason", "bored"], "unknown suppression"),
        (["subscribers", "list", "--status", "bored"], "unknown status"),
        (["subscribers", "erase", "nobody", "--yes"], "invalid email address"),
        (["subscribers", "import", "missing.csv"], "cannot read"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    cli_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert message in err and "Traceback" not in err
    assert err.strip().count("\n") == 0


def test_import_report_and_export(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "subscribers", "suppress", "james.okafor@example.org", "--reason", "complaint")
    code, out, _ = run(capsys, "subscribers", "import", str(REPO / "subscribers" / "demo.csv"))
    assert code == 0
    assert "added 11" in out and "suppressed (skipped) 1" in out
    assert "invalid line 14" in out and "duplicate line 15: repeats line 2" in out
    export = cli_env / "out.csv"
    assert run(capsys, "subscribers", "export", str(export))[0] == 0
    text = export.read_text()
    assert text.count("\n") == 13  # header, 11 subscribers, 1 suppression
    assert ",complaint," in text


def test_unsubscribe_gdpr_export_and_erase(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "subscribers", "add", "ann@example.org", "--name", "Ann", "--confirmed")
    assert "unsubscribed" in run(capsys, "subscribers", "unsubscribe", "ann@example.org")[1]
    assert "already" in run(capsys, "subscribers", "unsubscribe", "ann@example.org")[1]
    code, out, _ = run(capsys, "subscribers", "gdpr-export", "ann@example.org")
    data = json.loads(out)
    assert data["subscriber"]["name"] == "Ann" and data["suppression"]["reason"] == "unsubscribed"
    assert [e["kind"] for e in data["consent_events"]] == ["admin", "withdraw"]
    assert run(capsys, "subscribers", "erase", "ann@example.org", "--yes")[1].strip() == "erased"
    data = json.loads(run(capsys, "subscribers", "gdpr-export", "ann@example.org")[1])
    assert data["subscriber"] is None
    assert [e["kind"] for e in data["consent_events"]] == ["erase"]
    assert data["suppression"]["reason"] == "unsubscribed"  # the first reason stays
    code, _, err = run(capsys, "subscribers", "add", "ann@example.org")
    assert code == 1 and "suppressed" in err


def test_serve_refuses_the_placeholder_secret(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from newsletter.config import DEFAULT_SECRET

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", DEFAULT_SECRET)
    code, _, err = run(capsys, "serve", "--port", "1")
    assert code == 1 and "shipped placeholder" in err


def test_outbox_list_and_show_read_the_confirmation(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "outbox", "list")
    assert code == 0 and "no messages in" in out
    run(capsys, "subscribers", "add", "ann@example.org", "--name", "Ann")
    run(capsys, "subscribers", "add", "bob@example.org")
    code, out, _ = run(capsys, "outbox", "list", "--to", "ann@example.org")
    assert code == 0 and "Ann <ann@example.org>" in out and "bob@" not in out
    code, out, _ = run(capsys, "outbox", "show", "--to", "ann@example.org")
    assert code == 0 and "Hello Ann," in out and "http://127.0.0.1:8000/confirm/" in out
    code, out, _ = run(capsys, "outbox", "show")  # the newest: Bob's
    assert "To: bob@example.org" in out
    code, _, err = run(capsys, "outbox", "show", "9")
    assert code == 1 and "no message #9" in err


WIDE_HEADER = "email," + "x" * 140_000 + "\nann@example.org,1\n"


def test_header_over_the_csv_field_limit_is_one_clear_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cli_env / "wide.csv"
    path.write_text(WIDE_HEADER, encoding="utf-8")
    code, _, err = run(capsys, "subscribers", "import", str(path))
    assert code == 1 and "Traceback" not in err and err.strip().count("\n") == 0
    assert "wide.csv:1" in err and "longer than 131,072 characters" in err
    wide_resources = cli_env / "wide_resources.csv"
    wide_resources.write_text("title," + "x" * 140_000 + "\nA,b\n", encoding="utf-8")
    code, _, err = run(capsys, "resources", "import", str(wide_resources))
    assert code == 1 and "Traceback" not in err and "longer than 131,072 characters" in err


def test_import_another_tools_export_with_dry_run_then_for_real(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = (
        REPO / "tests" / "data" / "subscriber_exports" / "mailchimp_subscribed_members_export.csv"
    )
    code, out, _ = run(capsys, "subscribers", "import", str(export), "--dry-run")
    assert (
        code == 0 and "mailchimp export: would have added 3" in out and "nothing was stored" in out
    )
    assert "VIP (1)" in out  # the tag that matches no topic
    code, out, _ = run(capsys, "subscribers", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "subscribers", "import", str(export), "--format", "mailchimp",
                       "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["added"] == 3
    code, _, err = run(capsys, "subscribers", "import", str(export), "--format", "ghost")
    assert code == 1 and "not that of a Ghost export" in err
