"""``newsletter sequences`` as an admin types it (SQLite, in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.db import connect
from tests.scheduler_helpers import import_issue_42


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeds_dir: Path) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "memory")
    settings = load_settings()
    db = connect(settings)
    import_issue_42(db, settings, seeds_dir)
    db.dispose()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_create_add_steps_list_show_pause_resume(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "sequences", "create", "Welcome")
    assert code == 0, err
    assert "sequence #1 'Welcome' created (when a subscriber confirms)" in out
    assert run(capsys, "sequences", "add-step", "Welcome", "--issue", "42")[0] == 0
    code, out, err = run(capsys, "sequences", "add-step", "1", "--issue", "42", "--delay", "3d")
    assert code == 0, err
    assert "step 2 of 'Welcome': issue 42, 3d after the previous step" in out
    listed = json.loads(run(capsys, "sequences", "list", "--json")[1])
    assert [(r["name"], r["status"], r["steps"]) for r in listed] == [("Welcome", "active", 2)]
    shown = json.loads(run(capsys, "sequences", "show", "Welcome", "--json")[1])
    assert [(s["position"], s["after_trigger"], s["campaign_status"]) for s in shown["steps"]] == [
        (1, "0", "sending"),
        (2, "3d", "sending"),
    ]
    assert "paused" in run(capsys, "sequences", "pause", "Welcome")[1]
    shown = json.loads(run(capsys, "sequences", "show", "1", "--json")[1])
    assert shown["status"] == "paused"
    assert {s["campaign_status"] for s in shown["steps"]} == {"paused"}
    assert "resumed" in run(capsys, "sequences", "resume", "Welcome")[1]
    code, out, _ = run(capsys, "sequences", "show", "Welcome")
    assert code == 0 and "when a subscriber confirms" in out
    assert "0 enrolled, 0 stopped, 0 email(s) queued" in run(capsys, "sequences", "tick")[1]
    # the steps' campaigns are the sequence's: not in the campaign list
    assert json.loads(run(capsys, "campaign", "list", "--json")[1]) == []


MISTAKES = [
    (("create", "Drip", "--trigger", "birthday"), "invalid trigger 'birthday'"),
    (("create", "Drip", "--trigger", "topic:Knitting"), "unknown topic 'Knitting'"),
    (("add-step", "Nope", "--issue", "42"), "no sequence 'Nope'"),
    (("add-step", "Welcome", "--issue", "99"), "no issue number 99"),
    (("add-step", "Welcome", "--issue", "42", "--delay", "soon"), "invalid delay 'soon'"),
    (("create", "Welcome"), "a sequence named 'Welcome' already exists"),
]


def test_mistakes_are_one_line_errors(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "sequences", "create", "Welcome")[0] == 0
    for argv, needle in MISTAKES:
        code, _out, err = run(capsys, "sequences", *argv)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and needle in lines[0], (argv, err)
        assert "Traceback" not in err
    listed = json.loads(run(capsys, "sequences", "list", "--json")[1])
    assert [(r["name"], r["steps"]) for r in listed] == [("Welcome", 0)]  # nothing half-made


def test_campaign_commands_refuse_a_sequence_step(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sequences", "create", "Welcome")
    run(capsys, "sequences", "add-step", "Welcome", "--issue", "42")
    for verb in ("pause", "cancel"):
        code, _out, err = run(capsys, "campaign", verb, "1")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and "is a step of sequence #1" in lines[0], err
    shown = json.loads(run(capsys, "sequences", "show", "1", "--json")[1])
    assert shown["steps"][0]["campaign_status"] == "sending"


def test_scheduler_run_once_sends_due_sequence_emails(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from tests.sequence_helpers import confirmed, ledger

    run(capsys, "sequences", "create", "Welcome")
    run(capsys, "sequences", "add-step", "Welcome", "--issue", "42")
    db = connect(load_settings())
    confirmed(db, "ada@example.org", datetime.now(UTC))
    code, out, err = run(capsys, "scheduler", "run", "--once")
    assert code == 0, err
    assert "sequences: 1 email(s) queued" in out and "sequences: 1 sent" in out
    assert ledger(db, 1) == {"ada@example.org": "accepted"}
    code, out, err = run(capsys, "scheduler", "run", "--once")  # the next cron pass: nothing
    assert code == 0 and "sequences" not in out, err
    db.dispose()
