"""The ``newsletter`` command as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.errors import ConfigError

DATA = Path(__file__).parent / "data" / "import"
REPO_ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_here(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``run`` without the new process: the same ``main``, exit code and streams, in ~1/10 the time.

    For tests of what a command does, not of process start-up or signals; like ``run``
    it sees no NEWSLETTER_* variable but those given, and runs in ``cwd``.
    """
    import contextlib
    import io

    from newsletter.cli import common
    from newsletter.cli import main as cli_main

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    out, err = io.TextIOWrapper(io.BytesIO(), "utf-8"), io.TextIOWrapper(io.BytesIO(), "utf-8")
    widths = common.console.width, common.err_console.width
    code = 0
    try:
        for key in [k for k in os.environ if k.startswith("NEWSLETTER_")]:
            del os.environ[key]
        os.environ.update(env or {})
        os.chdir(cwd)
        common.console.width = common.err_console.width = 200
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli_main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        common.console.width, common.err_console.width = widths
    texts = []
    for stream in (out, err):
        stream.flush()
        texts.append(stream.buffer.getvalue().decode("utf-8"))  # type: ignore[attr-defined]
    return subprocess.CompletedProcess(["newsletter", *args], code, texts[0], texts[1])


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_import_list_show_search_round_trip(tmp_path: Path, seeds_dir: Path) -> None:
    seeds = [str(p) for p in sorted(seeds_dir.glob("*.txt"))]
    first = run_here("resources", "import", *seeds, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "added 38, merged 0, already present 1, skipped 2" in first.stdout
    assert "000_011b8b86067026e5.txt:2" in first.stdout
    second = run_here("resources", "import", *seeds, cwd=tmp_path)
    assert "added 0, merged 0, already present 39" in second.stdout
    listed = json.loads(
        run_here("resources", "list", "--json", "--type", "issue brief", cwd=tmp_path).stdout
    )
    assert {r["source"] for r in listed} >= {"Aurora Institute", "iNACOL"}
    shown = run_here("resources", "show", "golden-ticket", cwd=tmp_path)
    assert "case study" in shown.stdout
    found = json.loads(
        run_here("resources", "search", "restorative", "--json", cwd=tmp_path).stdout
    )
    assert found[0]["slug"] == "restorative-justice-resources-for-schools"
    assert (tmp_path / "var" / "newsletter.db").exists()


def test_add_edit_delete(tmp_path: Path) -> None:
    added = run_here(
        "resources",
        "add",
        "--title",
        "A Toolkit",
        "--url",
        "https://e.org/a",
        "--summary",
        "This toolkit helps.",
        cwd=tmp_path,
    )
    assert added.returncode == 0 and "toolkit" in added.stdout
    assert (
        run_here("resources", "edit", "a-toolkit", "--type", "guide", cwd=tmp_path).returncode == 0
    )
    shown = run_here("resources", "show", "1", cwd=tmp_path)
    assert "type: guide" in shown.stdout
    assert run_here("resources", "delete", "1", "--yes", cwd=tmp_path).returncode == 0
    _assert_one_line_error(run_here("resources", "show", "1", cwd=tmp_path), "no resource '1'")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("bad_xml.xml", "bad_xml.xml"),
        ("missing_title_column.csv", "title"),
        ("latin1.csv", "UTF-8"),
        ("notes.unknown", "unknown format"),
    ],
)
def test_bad_files_fail_with_one_line_and_store_nothing(
    tmp_path: Path, name: str, needle: str
) -> None:
    good = DATA / "resources.csv"
    result = run_here("resources", "import", str(good), str(DATA / name), cwd=tmp_path)
    _assert_one_line_error(result, needle)
    listed = run_here("resources", "list", "--json", cwd=tmp_path)
    assert json.loads(listed.stdout) == []


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_here("resources", "import", "nope.csv", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "nope.csv" in result.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = run_here(
        "resources",
        "list",
        cwd=tmp_path,
        env={"NEWSLETTER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
    )
    _assert_one_line_error(result, "cannot use database", "127.0.0.1:1")


def test_invalid_setting_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text("batch_size = 5000\n")
    _assert_one_line_error(run_here("resources", "list", cwd=tmp_path), "batch_size")
    (tmp_path / "newsletter.toml").write_text('database_url = "mysql://x"\n')
    _assert_one_line_error(run_here("resources", "list", cwd=tmp_path), "database_url")
    (tmp_path / "newsletter.toml").write_text("this is not toml")
    # Once through the real process: the console script maps errors at its edge too.
    _assert_one_line_error(run("resources", "list", cwd=tmp_path), "newsletter.toml")


def test_settings_sources_in_priority_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "newsletter.toml").write_text(
        'organisation = "From TOML"\nbatch_size = 500\n[[topics]]\nname = "Only"\nkeywords = ["only"]\n'
    )
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "250")
    settings = load_settings()
    assert settings.organisation == "From TOML"
    assert settings.batch_size == 250
    assert [t.name for t in settings.topics] == ["Only"]
    assert load_settings(batch_size=10).batch_size == 10
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings()


def test_db_upgrade_command(tmp_path: Path) -> None:
    result = run_here("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0 and "database at" in result.stdout
    assert run_here("db", "current", cwd=tmp_path).stdout.strip() == result.stdout.split()[-1]


def test_settings_errors_say_which_file_or_variable(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('transport = "outbox\n')
    _assert_one_line_error(
        run_here("resources", "list", cwd=tmp_path), "newsletter.toml: not valid TOML"
    )
    (tmp_path / "newsletter.toml").write_text('batch_size = "many"\n')
    _assert_one_line_error(
        run_here("resources", "list", cwd=tmp_path),
        "invalid setting batch_size (in newsletter.toml)",
    )
    (tmp_path / "newsletter.toml").unlink()
    result = run_here(
        "resources", "list", cwd=tmp_path, env={"NEWSLETTER_DATABASE_URL": "mysql://x"}
    )
    _assert_one_line_error(result, "database_url (NEWSLETTER_DATABASE_URL): must be a sqlite")
    assert "Value error" not in result.stderr


def test_a_sqlite_path_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    """A typo in a path must not silently grow a new empty database; var/ is still created."""
    missing = tmp_path / "no-such-folder" / "deeper" / "news.db"
    result = run_here("resources", "list", cwd=tmp_path,
                 env={"NEWSLETTER_DATABASE_URL": f"sqlite:///{missing}"})  # fmt: skip
    _assert_one_line_error(result, f"the folder {missing.parent} for the SQLite database")
    assert not (tmp_path / "no-such-folder").exists()
    assert (
        run_here("resources", "list", cwd=tmp_path).returncode == 0
    )  # the default var/newsletter.db
    assert (tmp_path / "var" / "newsletter.db").exists()
