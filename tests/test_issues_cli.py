"""``newsletter issue ...`` end to end on SQLite: one line and exit 1 on every user error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from issue_helpers import ISSUE_42

from newsletter.cli import main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seeds_dir: Path,
) -> Run:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    assert invoke("resources", "import", *map(str, sorted(seeds_dir.glob("*.txt"))))[0] == 0
    return invoke


def test_import_list_show_export(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("issue", "import", str(ISSUE_42))
    assert code == 0 and "imported Issue 42 (issue-42-april-2018): 3 sections, 4 items" in out
    code, out, _ = run("issue", "list")
    assert code == 0 and "Issue 42: April 2018" in out and "ready" in out
    code, out, _ = run("issue", "show", "42")
    assert code == 0 and "Scheduling for Learning, Not Convenience (article)" in out
    code, exported, _ = run("issue", "export", "42")
    assert code == 0 and exported.startswith("# Issue 42: April 2018\nnumber: 42\n")
    target = tmp_path / "out" / "42.yaml"
    assert run("issue", "export", "42", "--out", str(target))[0] == 0
    assert target.read_text() == exported
    assert run("issue", "import", str(target))[0] == 0
    assert run("issue", "export", "42")[1] == exported


def test_editing_commands(run: Run) -> None:
    code, out, _ = run(
        "issue", "new", "--number", "43", "--title", "Issue 43: May 2018",
        "--date", "2018-05-01", "--subject", "May news",
    )  # fmt: skip
    assert code == 0 and "created Issue 43" in out
    assert run("issue", "add-item", "43", "--section", "News", "--resource", "1")[0] == 0
    code, out, _ = run("issue", "add-item", "43", "--section", "News", "--resource", "2",
                       "--position", "1")  # fmt: skip
    assert code == 0 and "at 1" in out
    item_id = out.split("#")[1].split()[0]
    code, out, _ = run("issue", "move-item", "43", item_id, "--to", "2")
    assert code == 0 and f"moved item #{item_id} to position 2" in out
    assert run("issue", "status", "43", "ready")[1].strip() == "issue 43 is ready"
    assert run("issue", "remove-item", "43", item_id)[0] == 0


def test_preview_without_screenshots_and_preflight(run: Run, tmp_path: Path) -> None:
    out_dir = tmp_path / "preview"
    code, out, err = run(
        "issue", "preview", str(ISSUE_42), "--out", str(out_dir), "--no-screenshots"
    )
    assert code == 0, err
    assert {p.name for p in out_dir.iterdir()} == {"email.html", "email.txt", "email.eml"}
    eml = (out_dir / "email.eml").read_text()
    assert "List-Unsubscribe: <http://127.0.0.1:8000/test/unsubscribe>" in eml
    assert "%%" not in (out_dir / "email.html").read_text()
    code, out, _ = run("issue", "preflight", str(ISSUE_42))
    assert code == 0 and "preflight ok" in out
    code, out, _ = run("issue", "preflight", str(ISSUE_42), "--segment", "Equity")
    assert code == 0


def test_user_errors_are_one_line_and_exit_1(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("number: 1\ntitle: T\ndate: 2018-01-01\nsubject: S\nsections:\n"
                   "  - heading: H\n    items:\n      - resource: nope\n")  # fmt: skip
    code, _, err = run("issue", "import", str(bad))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{bad}:8: unknown resource" in err
    bad.write_text("number: 1\ntitle: [\n")
    code, _, err = run("issue", "import", str(bad))
    assert code == 1 and f"{bad}:3: bad YAML" in err.replace("\n", "")
    code, _, err = run("issue", "export", "99")
    assert code == 1 and "no issue '99'" in err
    code, _, err = run("issue", "new", "--number", "1", "--title", "T", "--date", "May",
                       "--subject", "S")  # fmt: skip
    assert code == 1 and "YYYY-MM-DD" in err


def test_preflight_failure_lists_problems_and_exits_1(run: Run, tmp_path: Path) -> None:
    issue = tmp_path / "empty.yaml"
    issue.write_text("number: 3\ntitle: T\ndate: 2018-01-01\nsubject: S\nsections:\n"
                     "  - heading: Nothing here\n")  # fmt: skip
    code, _, err = run("issue", "preflight", str(issue))
    assert code == 1
    assert "- the issue has no items" in err and "empty section" in err


@pytest.mark.parametrize("missing", ["chromium", "playwright"])
def test_preview_without_chromium_writes_the_files_and_warns(
    tmp_path: Path, seeds_dir: Path, missing: str
) -> None:
    """Chromium is a preview tool, not a requirement: no browser, no screenshots, exit 0."""
    from tests.test_cli import run as run_process

    env = {"CHROMIUM_PATH": str(tmp_path / "no-chromium-here")}
    if missing == "playwright":  # a package that fails to import, as on an install without it
        shim = tmp_path / "shim" / "playwright"
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("raise ImportError('No module named playwright')\n")
        env = {"PYTHONPATH": str(shim.parent)}
    out_dir = tmp_path / "preview"
    seeds = [str(p) for p in sorted(seeds_dir.glob("*.txt"))]
    assert run_process("resources", "import", *seeds, cwd=tmp_path).returncode == 0
    result = run_process("issue", "preview", str(ISSUE_42), "--out", str(out_dir),
                         cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert {p.name for p in out_dir.iterdir()} == {"email.html", "email.txt", "email.eml"}
    [warning] = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith("warning: screenshots skipped:")
    assert "newsletter[preview]" in warning


def test_every_problem_of_an_issue_file_in_one_run(run: Run, tmp_path: Path) -> None:
    """Three mistakes, one run, one line, plain words (no 'not None')."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "number: 7\n"
        "title: T\n"
        "subjet: S\n"  # a typo, and so no subject
        "sections:\n"
        "  - heading: H\n"
        "    items:\n"
        "      - resource: nope\n"
        "      - blurb: an article without a title\n"
    )
    code, _, err = run("issue", "import", str(bad))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    line = lines[0]
    for needle in (f"{bad}:3: unknown issue key 'subjet'", "missing subject", "missing date",
                   f"{bad}:8: an item needs a resource"):  # fmt: skip
        assert needle in line, line
    assert "not None" not in line and "Traceback" not in err
    bad.write_text(
        bad.read_text()
        .replace("subjet", "subject")
        .replace("      - blurb: an article without a title\n", "")
        + "date: 2018-01-01\n"
    )
    code, _, err = run("issue", "import", str(bad))
    assert code == 1 and f"{bad}:7: unknown resource" in err
