"""``newsletter schedule`` / ``newsletter scheduler`` as an admin types them (SQLite)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.cli import main
from newsletter.cli import schedule as schedule_cli
from newsletter.cli.common import AppContext
from newsletter.config import load_settings
from newsletter.db import connect
from tests.scheduler_helpers import import_issue_42, ledger_rows, load
from tests.sending_helpers import add_subscribers


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeds_dir: Path) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "memory")
    settings = load_settings()
    db = connect(settings)
    import_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, 4)
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


def test_schedule_list_reschedule_and_cancel(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "schedule", "42", "--at", "2030-04-02 09:00",
                         "--tz", "America/New_York", "--topic", "Equity")  # fmt: skip
    assert code == 0, err
    assert "campaign #1 scheduled: issue 42 at 2030-04-02 09:00 EDT (2030-04-02 13:00 UTC)" in out
    code, out, err = run(capsys, "schedule", "add-recurring", "--rule", "first tuesday 09:00",
                         "--tz", "America/New_York")  # fmt: skip
    assert code == 0, err
    assert "recurring schedule #1 'first Tuesday of every month at 09:00" in out
    listed = json.loads(run(capsys, "schedule", "list", "--json")[1])
    assert [(c["id"], c["due_utc"], c["topics"]) for c in listed["campaigns"]] == [
        (1, "2030-04-02T13:00:00+00:00", ["Equity"])
    ]
    assert listed["recurring"][0]["rule"] == {
        "kind": "monthly_weekday", "weekday": "tue", "nth": 1, "time": "09:00"
    }  # fmt: skip
    code, out, _ = run(capsys, "schedule", "reschedule", "1", "--at", "2030-12-01T09:00",
                       "--tz", "America/New_York")  # fmt: skip
    assert code == 0 and "now due 2030-12-01 09:00 EST (2030-12-01 14:00 UTC)" in out
    assert run(capsys, "schedule", "cancel", "1")[0] == 0
    assert run(capsys, "schedule", "cancel", "1", "--recurring")[0] == 0
    listed = json.loads(run(capsys, "schedule", "list", "--json")[1])
    assert listed["campaigns"] == [] and listed["recurring"][0]["enabled"] is False


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("schedule", "42", "--at", "2018-04-03 09:00", "--tz", "America/New_York"), "in the past"),
        (("schedule", "42", "--at", "2030-04-03 09:00", "--tz", "Mars/Base"), "unknown time zone"),
        (("schedule", "42", "--at", "soon"), "invalid time 'soon'"),
        (("schedule", "41", "--at", "2030-04-03 09:00"), "no issue number 41"),
        (("schedule", "add-recurring", "--rule", "whenever"), "cannot read rule"),
        (("schedule", "cancel", "99"), "no campaign #99"),
    ],
)
def test_mistakes_are_one_line_errors(
    cli_env: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], needle: str
) -> None:
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in err
    assert len(lines) == 1 and needle in lines[0], err


def test_scheduler_run_once_starts_what_is_due(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.6)
    assert run(capsys, "schedule", "42", "--at", due.isoformat())[0] == 0
    code, out, _ = run(capsys, "scheduler", "run", "--once")
    assert code == 0 and "started" not in out  # not due yet
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.05)
    code, out, err = run(capsys, "scheduler", "run", "--once")
    assert code == 0 and "started: #1" in out, err
    # --once is for cron: it sends what it started before returning (it used to leave it
    # queued until a worker came by).
    assert "campaign #1 'Issue 42: April 2018': sent" in out and "accepted 4" in out, out
    assert ledger_rows(connect(load_settings()), 1) == 4


def test_scheduler_run_once_without_a_worker_says_who_sends(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    due = datetime.now(UTC) - timedelta(seconds=1)
    assert run(capsys, "schedule", "42", "--at", due.isoformat())[0] == 0
    code, out, _ = run(capsys, "scheduler", "run", "--once", "--no-worker")
    assert code == 0 and "started: #1" in out
    assert "not sending here (--no-worker): #1 wait for 'newsletter worker'" in out


def test_the_demo_step_schedules_and_sends_and_can_run_twice(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule_cli, "DEMO_LEAD_SECONDS", 0.5)
    app_ctx = AppContext()
    try:
        schedule_cli.demo_step(app_ctx)
        schedule_cli.demo_step(app_ctx)
        for cid in (1, 2):
            assert load(app_ctx.db, cid).status == "sent"
            assert ledger_rows(app_ctx.db, cid) == 4
    finally:
        app_ctx.close()
    out = capsys.readouterr().out
    assert "campaign #2 'Issue 42 (demo)': sent" in out and "started: #2" in out
