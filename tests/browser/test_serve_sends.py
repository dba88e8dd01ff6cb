"""With only ``newsletter serve`` running, "Start now" in the admin sends (embedded default).

A real ``serve`` process (SQLite, outbox) set up with the README's commands;
the admin reviews the send in Chromium, confirms, and the campaign page
follows the in-process worker to "sent".  Nothing else runs: no ``worker``,
no ``scheduler run``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import CHROMIUM_ARGS, chromium, free_port
from tests.test_cli import REPO_ROOT, run

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
PASSWORD = "correct horse battery staple"


def _env(port: int) -> dict[str, str]:
    return {"NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}", "NEWSLETTER_DEBUG": "true"}


@pytest.fixture
def served(tmp_path: Path, seeds_dir: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    env = _env(port)
    seeds = [str(p) for p in sorted(seeds_dir.glob("*.txt"))]
    for args in (
        ("resources", "import", *seeds),
        ("issue", "import", str(REPO_ROOT / "issues" / "042-2018-04.yaml")),
        ("subscribers", "import", str(REPO_ROOT / "subscribers" / "demo.csv")),
    ):
        assert run(*args, cwd=tmp_path, env=env).returncode == 0
    added = subprocess.run(
        [sys.executable, "-m", "newsletter", "users", "add", "admin@example.org", "--role",
         "admin", "--password-stdin"],
        input=PASSWORD + "\n", cwd=tmp_path, text=True, capture_output=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}, **env},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}, **env},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/subscribe", timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
    try:
        yield url, tmp_path
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
        assert process.returncode == 0, output
        assert "Traceback" not in output, output


def test_start_now_sends_with_only_serve_running(served: tuple[str, Path]) -> None:
    url, folder = served
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page: Any = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/admin/campaigns")
        page.get_by_label("Email address").fill("admin@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/admin/campaigns")
        page.get_by_label("Issue", exact=True).select_option("42")
        page.get_by_role("button", name="Create campaign").click()
        assert page.locator("#review-count").inner_text() == "12"
        assert "Preflight passed" in page.content()
        page.get_by_role("button", name="Send to 12 subscribers now").click()
        page.wait_for_selector("h1 .badge-sent", timeout=60_000)  # the page follows the worker
        assert page.locator("progress").get_attribute("value") == "12"
        browser.close()
    assert len(list((folder / "var" / "outbox").glob("*.eml"))) == 12
