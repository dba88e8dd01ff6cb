"""``newsletter users add|list|remove`` (both backends, through the environment like a shell)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from newsletter.admin import users
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.db import Database
from tests.admin_helpers import fast_hashing  # noqa: F401 - autouse fixture

PASSWORD = "a long enough passphrase"


@pytest.fixture
def runner(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", settings.database_url)
    if settings.database_schema:
        monkeypatch.setenv("NEWSLETTER_DATABASE_SCHEMA", settings.database_schema)
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(settings.var_dir))
    return CliRunner()


def test_add_from_stdin_or_a_prompt_list_and_remove(runner: CliRunner, db: Database) -> None:
    added = runner.invoke(app, ["users", "add", "Ed@Example.org", "--password-stdin"],
                          input=PASSWORD + "\n")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added ed@example.org (editor)" in added.output and PASSWORD not in added.output
    prompted = runner.invoke(app, ["users", "add", "boss@example.org", "--role", "admin"],
                             input=f"{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
    assert prompted.exit_code == 0 and "(admin)" in prompted.output
    listed = runner.invoke(app, ["users", "list", "--json"])
    assert [(u["email"], u["role"]) for u in json.loads(listed.output)] == [
        ("boss@example.org", "admin"), ("ed@example.org", "editor"),
    ]  # fmt: skip
    with db.session() as session:
        assert users.authenticate("ed@example.org", PASSWORD, session=session) is not None
    table = runner.invoke(app, ["users", "list"])
    assert "ed@example.org" in table.output and "never" in table.output
    removed = runner.invoke(app, ["users", "remove", "ed@example.org", "--yes"])
    assert removed.exit_code == 0 and "removed ed@example.org" in removed.output
    with db.session() as session:
        assert users.find_user("ed@example.org", session=session) is None


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["users", "add", "a@example.org", "--password-stdin"], "short\n", "at least 12"),
        (["users", "add", "a@example.org", "--role", "owner", "--password-stdin"], "x\n",
         "role must be one of editor, admin"),
        (["users", "add", "not-an-address", "--password-stdin"], PASSWORD + "\n", "invalid email"),
        (["users", "add", "a@example.org", "--password-stdin"], "\n", "no password"),
        (["users", "remove", "nobody@example.org", "--yes"], "", "no user nobody@example.org"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_exit_1(
    runner: CliRunner, argv: list[str], stdin: str, message: str
) -> None:
    result = runner.invoke(app, argv, input=stdin)
    assert result.exit_code == 1
    assert message in str(result.exception) or message in result.output
