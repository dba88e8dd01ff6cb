"""``newsletter bounces ingest|stats|list|raw|serve`` as an admin runs them."""

from __future__ import annotations

import json
import mailbox
import re
import socket
from pathlib import Path

from tests.test_cli import _assert_one_line_error
from tests.test_cli import run_here as run

CORPUS = Path(__file__).parent / "data" / "bounces"
SAMPLES = [
    CORPUS / "modern" / "postfix_user_unknown.msg",
    CORPUS / "modern" / "arf_aol.msg",
    CORPUS / "modern" / "autoreply_outlook.msg",
    CORPUS / "modern" / "human_reply.msg",
    CORPUS / "modern" / "gmail_over_quota.msg",
]


def test_dry_run_json_is_one_object_per_mail_and_changes_nothing(tmp_path: Path) -> None:
    result = run("bounces", "ingest", "--dry-run", "--json", *map(str, SAMPLES), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["kind"], x["status"]) for x in lines] == [
        ("hard", "5.1.1"), ("complaint", None), ("auto-reply", None), ("unparsed", None),
        ("soft", "4.2.2"),
    ]  # fmt: skip
    assert all(set(x) == {"file", "kind", "recipients", "status", "diagnostic"} for x in lines)
    assert lines[0]["file"] == str(SAMPLES[0]) and lines[0]["recipients"] == ["alice@example.net"]
    assert lines[0]["diagnostic"].startswith("550 5.1.1 <alice@example.net>")
    # Not even a database was created (only the signing key that checks VERP tokens).
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["secret_keys"]


def test_mbox_and_maildir_then_a_real_ingest_once(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "export.mbox")
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for sample in SAMPLES[:3]:
        box.add(sample.read_bytes())
    for sample in SAMPLES[3:]:
        maildir.add(sample.read_bytes())
    box.flush()
    paths = [str(tmp_path / "export.mbox"), str(tmp_path / "Maildir")]
    dry = run("bounces", "ingest", "--dry-run", "--json", *paths, cwd=tmp_path)
    files = [json.loads(line)["file"] for line in dry.stdout.splitlines()]
    assert len(files) == 5 and files[0] == f"{paths[0]}#0" and files[3].startswith(f"{paths[1]}#")
    first = run("bounces", "ingest", *paths, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        "5 mail(s): hard 1, soft 1, complaint 1, auto-reply 1, unparsed 1 (0 already stored)"
        in first.stdout
    )
    again = run("bounces", "ingest", *paths, cwd=tmp_path)
    assert "(5 already stored)" in again.stdout
    stats = json.loads(run("bounces", "stats", "--json", cwd=tmp_path).stdout)
    assert stats == {"hard": 1, "soft": 1, "complaint": 1, "auto-reply": 1, "unparsed": 1}
    listed = run("bounces", "list", "--kind", "unparsed", cwd=tmp_path).stdout
    assert "unparsed" in listed and "hard" not in listed
    # Maildir lists its files in no set order, so the id comes from the listing.
    unparsed_id = re.search(r"^\W*(\d+)\W", listed, re.MULTILINE)
    assert unparsed_id, listed
    kept = run("bounces", "raw", unparsed_id.group(1), cwd=tmp_path)  # kept whole
    assert kept.returncode == 0 and kept.stdout == SAMPLES[3].read_text()


def test_bad_paths_and_missing_mail_are_one_line_errors(tmp_path: Path) -> None:
    _assert_one_line_error(
        run("bounces", "ingest", str(SAMPLES[0]), str(tmp_path / "nope.eml"), cwd=tmp_path),
        "nope.eml", "no such file or folder",
    )  # fmt: skip
    assert not (tmp_path / "var").exists()  # checked before anything was read or stored
    _assert_one_line_error(run("bounces", "raw", "99", cwd=tmp_path), "no stored mail #99")


def test_serve_on_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("bounces", "serve", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    _assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_serve_receives_until_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import smtplib
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_BOUNCE_DOMAIN"] = "bounces.example.org"
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "bounces", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr
                time.sleep(0.1)
        with client:
            client.sendmail(
                "", ["bounces@bounces.example.org"], SAMPLES[0].read_bytes().replace(b"\n", b"\r\n")
            )
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"receiving bounces for @bounces.example.org on 127.0.0.1:{port}" in out
    stats = json.loads(
        run(
            "bounces",
            "stats",
            "--json",
            cwd=tmp_path,
            env={"NEWSLETTER_BOUNCE_DOMAIN": "bounces.example.org"},
        ).stdout
    )
    assert stats["hard"] == 1
