"""A SIGKILL of the web process right after 1,000 answered redirects loses none of those clicks.

The real ``newsletter serve`` (SQLite, outbox) answers 1,000 tracked links
read from the mail it sent, and is killed with SIGKILL the moment the last
302 arrives: no shutdown, no last drain.  A new ``serve`` stores what the
dead one spooled; every click is counted exactly once, and storing again
(``newsletter tracking drain``) changes nothing.
"""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.browser_helpers import free_port
from tests.test_cli import REPO_ROOT, run

CLICKS = 1000
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _env(port: int) -> dict[str, str]:
    return {
        "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_SECRET_KEY": "kill-test-secret-0123456789",
        "NEWSLETTER_SCANNER_WINDOW_SECONDS": "0",
    }


def _serve(folder: Path, port: int, processes: int = 1) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--no-worker",
         "--processes", str(processes)],
        cwd=folder, env={**env, **_env(port)}, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=1)
            return process
        except httpx.HTTPError:
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)


@pytest.fixture
def sent(tmp_path: Path, seeds_dir: Path) -> Iterator[tuple[Path, int, list[str]]]:
    """Issue 42 sent to the demo list through the outbox; the tracked links of every mail."""
    port = free_port()
    env = _env(port)
    for args in (
        ("resources", "import", *map(str, sorted(seeds_dir.glob("*.txt")))),
        ("issue", "import", str(REPO_ROOT / "issues" / "042-2018-04.yaml")),
        ("subscribers", "import", str(REPO_ROOT / "subscribers" / "demo.csv")),
        ("campaign", "create", "42"),
        ("campaign", "start", "1", "--wait"),
    ):
        assert run(*args, cwd=tmp_path, env=env).returncode == 0
    paths: list[str] = []
    for eml in sorted((tmp_path / "var" / "outbox").glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        paths += re.findall(rf'href="http://127\.0\.0\.1:{port}(/r/[^"]+)"', html)
    assert len(paths) >= 100
    yield tmp_path, port, paths


def _events(folder: Path) -> tuple[int, int]:
    engine = sa.create_engine(f"sqlite:///{folder / 'var' / 'newsletter.db'}")
    try:
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM engagement_events")).scalar_one()
            summed = conn.execute(
                sa.text("SELECT sum(clicks + machine_clicks) FROM deliveries")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(events), int(summed or 0)


def test_a_sigkill_after_1000_answered_redirects_loses_no_click(
    sent: tuple[Path, int, list[str]],
) -> None:
    folder, port, paths = sent
    server = _serve(folder, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"user-agent": FIREFOX},
                          timeout=10) as client:  # fmt: skip
            for n in range(CLICKS):
                answer = client.get(paths[n % len(paths)], follow_redirects=False)
                assert answer.status_code == 302
        server.send_signal(signal.SIGKILL)  # the moment the 1,000th answer is in
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    assert _events(folder)[0] < CLICKS  # the dead process did not get to store them all

    again = _serve(folder, port)  # its start-up drain stores what the dead one spooled
    try:
        deadline = time.monotonic() + 30
        while _events(folder)[0] < CLICKS and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
    assert _events(folder) == (CLICKS, CLICKS)
    drained = run("tracking", "drain", cwd=folder, env=_env(port))
    assert drained.returncode == 0 and "0 hits stored" in drained.stdout
    assert _events(folder) == (CLICKS, CLICKS)


def test_several_web_processes_share_one_spool_and_one_drain(
    sent: tuple[Path, int, list[str]],
) -> None:
    """``serve --processes 2``: the supervisor stores both processes' clicks while they run
    (each seals its file every second), then stops cleanly."""
    folder, port, paths = sent
    server = _serve(folder, port, processes=2)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"user-agent": FIREFOX},
                          timeout=10) as client:  # fmt: skip
            for n in range(300):
                assert client.get(paths[n % len(paths)], follow_redirects=False).status_code == 302
        deadline = time.monotonic() + 20  # stored while serving, not only at shutdown
        while _events(folder)[0] < 300 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _events(folder) == (300, 300)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0
    assert _events(folder) == (300, 300)
    left = list((folder / "var" / "tracking" / "spool").glob("*.jsonl"))
    assert all(p.stat().st_size == 0 for p in left)  # nothing spooled was left behind
