"""Signing keys: created once in the data folder, shared by every command, rotated without loss.

The defect this guards against: mail sent from the CLI was signed with a
built-in default key while ``serve`` refused that key, so every unsubscribe
link in mail already sent answered "This link does not work".
"""

from __future__ import annotations

import email
import os
import stat
from email import policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter import keyring
from newsletter.config import DEFAULT_SECRET, load_settings
from newsletter.db import connect
from newsletter.errors import ConfigError
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.test_cli import REPO_ROOT
from tests.test_cli import run_here as run


def _send_issue_42(cwd: Path, env: dict[str, str] | None = None) -> list[Path]:
    """What README's first steps do: import, then send Issue 42 from the CLI (outbox)."""
    seeds = [
        str(p) for p in sorted((REPO_ROOT / "newsletter" / "sample_data" / "library").glob("*"))
    ]
    for args in (
        ("resources", "import", *seeds),
        ("issue", "import", str(REPO_ROOT / "issues" / "042-2018-04.yaml")),
        ("subscribers", "import", str(REPO_ROOT / "subscribers" / "demo.csv")),
        ("campaign", "create", "42"),
        ("campaign", "start", "1", "--wait"),
    ):
        result = run(*args, cwd=cwd, env=env)
        assert result.returncode == 0, result.stderr
    return sorted((cwd / "var" / "outbox").glob("*.eml"))


def _unsubscribe_path(eml: Path) -> str:
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    url = str(message["List-Unsubscribe"]).strip("<>")
    return url.removeprefix("http://127.0.0.1:8000")


def _client(tmp_path: Path, **overrides: object) -> TestClient:
    settings = load_settings(var_dir=tmp_path / "var", **overrides)
    return TestClient(create_app(settings, connect(settings), messenger=MemoryMessenger()))


def test_cli_mail_keeps_working_when_serve_gets_an_explicit_key(tmp_path: Path) -> None:
    """README's order: send from the CLI with no key set, then serve with NEWSLETTER_SECRET_KEY."""
    outbox = _send_issue_42(tmp_path)
    key_file = tmp_path / "var" / "secret_keys"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert DEFAULT_SECRET not in key_file.read_text()

    client = _client(tmp_path, secret_key="a-key-chosen-later-for-serve")
    path = _unsubscribe_path(outbox[0])
    page = client.get(path)
    assert page.status_code == 200 and "does not work" not in page.text
    one_click = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "unsubscribed" in client.get(path).text.lower()


def test_every_process_signs_with_the_same_created_key(tmp_path: Path) -> None:
    first = load_settings(var_dir=tmp_path / "var").keyring
    second = load_settings(var_dir=tmp_path / "var").keyring
    assert first.current == second.current and len(first.current) >= 32
    assert first.source.endswith("secret_keys")


def test_a_second_creator_keeps_the_first_key(tmp_path: Path) -> None:
    """Two processes starting at once: the file is linked into place atomically, one wins."""
    path = tmp_path / "secret_keys"
    assert keyring._write_new(path, ["k" * 40])
    assert not keyring._write_new(path, ["j" * 40])
    assert keyring.read_keys(path) == ["k" * 40]
    assert [p.name for p in tmp_path.iterdir()] == ["secret_keys"]  # no temp file left


def test_rotation_keeps_links_already_sent(tmp_path: Path) -> None:
    outbox = _send_issue_42(tmp_path)
    before = load_settings(var_dir=tmp_path / "var").keyring.current
    rotated = run("secret", "rotate", cwd=tmp_path)
    assert rotated.returncode == 0 and "1 older key(s) still verify" in rotated.stdout
    settings = load_settings(var_dir=tmp_path / "var")
    assert settings.keyring.current != before and settings.keyring.previous == (before,)
    client = _client(tmp_path)
    path = _unsubscribe_path(outbox[0])
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    status = run("secret", "status", cwd=tmp_path)
    assert "older keys still verifying links already sent: 1" in status.stdout
    assert before not in status.stdout and settings.keyring.current not in status.stdout


def test_explicit_key_rotation_through_previous_keys(tmp_path: Path) -> None:
    old = load_settings(var_dir=tmp_path / "var", secret_key="old-explicit-key-123")
    new = load_settings(
        var_dir=tmp_path / "var",
        secret_key="new-explicit-key-456",
        previous_secret_keys=["old-explicit-key-123"],
    )
    assert new.keyring.verifying == ["old-explicit-key-123", "new-explicit-key-456"]
    assert old.keyring.previous == ()  # no key file was needed, none was created
    assert not (tmp_path / "var" / "secret_keys").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("send-test", "42", "--to", "editor@example.org"),
        ("campaign", "start", "1"),
        ("demo",),
        ("serve", "--port", "1"),
    ],
)
def test_every_signing_command_refuses_the_placeholder_key(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    _send_issue_42(tmp_path)
    result = run(*args, cwd=tmp_path, env={"NEWSLETTER_SECRET_KEY": DEFAULT_SECRET})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "shipped placeholder" in result.stderr


def test_a_broken_key_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_keys").write_text("# only a comment\n")
    with pytest.raises(ConfigError, match="holds no key"):
        load_settings(var_dir=tmp_path / "var").keyring  # noqa: B018
    result = run("send-test", "42", "--to", "a@example.org", cwd=tmp_path)
    assert result.returncode == 1 and "secret_keys" in result.stderr
    assert "Traceback" not in result.stderr
    os.chmod(tmp_path / "var" / "secret_keys", 0o600)
