"""The sending commands as an admin runs them, on the embedded default (SQLite + outbox)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import REPO_ROOT
from tests.test_cli import run_here as run


def test_import_create_start_report_retry(tmp_path: Path, seeds_dir: Path) -> None:
    seeds = [str(p) for p in sorted(seeds_dir.glob("*.txt"))]
    assert run("resources", "import", *seeds, cwd=tmp_path).returncode == 0
    assert (
        run(
            "issue", "import", str(REPO_ROOT / "issues" / "042-2018-04.yaml"), cwd=tmp_path
        ).returncode
        == 0
    )
    imported = run(
        "subscribers", "import", str(REPO_ROOT / "subscribers" / "demo.csv"), cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr

    test = run("send-test", "42", "--to", "editor@example.org", cwd=tmp_path)
    assert test.returncode == 0 and "accepted" in test.stdout
    created = run("campaign", "create", "42", cwd=tmp_path)
    assert "campaign #1 created" in created.stdout
    started = run("campaign", "start", "1", "--wait", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert "campaign #1 started" in started.stdout and ": sent" in started.stdout

    # The outbox reports no deliveries: said so, not "delivery rate 0.0 %".
    assert "delivery rate not reported by this transport" in started.stdout
    assert "delivery rate 0.0%" not in started.stdout
    report = json.loads(run("campaign", "report", "1", "--json", cwd=tmp_path).stdout)
    assert report["status"] == "sent" and report["counts"]["accepted"] == report["total"] > 0
    assert report["rates"]["delivery_rate"] is None
    assert len(report["recipients"]) == report["total"]
    outbox = list((tmp_path / "var" / "outbox").glob("*.eml"))
    assert len(outbox) == report["total"] + 1  # plus the test send

    again = run("campaign", "start", "1", cwd=tmp_path)
    assert "was already started" in again.stdout
    paused = run("campaign", "pause", "1", cwd=tmp_path)
    assert (
        paused.returncode == 1
        and "it is sent" in paused.stderr
        and "Traceback" not in paused.stderr
    )
    retried = run("campaign", "retry-failed", "1", cwd=tmp_path)
    assert "0 recipient(s) queued again" in retried.stdout
    listed = json.loads(run("campaign", "list", "--json", cwd=tmp_path).stdout)
    assert [c["status"] for c in listed] == ["sent"]


def test_bad_topic_and_missing_issue_are_one_line_errors(tmp_path: Path) -> None:
    result = run("campaign", "create", "42", "--topic", "Knitting", cwd=tmp_path)
    assert (
        result.returncode == 1 and "Knitting" in result.stderr and "Traceback" not in result.stderr
    )
    result = run("campaign", "create", "99", cwd=tmp_path)
    assert result.returncode == 1 and "no issue number 99" in result.stderr
