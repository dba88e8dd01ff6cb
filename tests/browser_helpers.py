"""For browser tests: the system Chromium and a live uvicorn server in a thread."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from newsletter.issues.preview import CHROMIUM_ARGS, chromium_path

__all__ = ["CHROMIUM_ARGS", "chromium", "free_port", "serve"]


def chromium() -> str:
    """The system Chromium; required in CI, a skip elsewhere."""
    path = chromium_path() or "/usr/bin/chromium"
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI")
        pytest.skip("Chromium is not installed")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, port: int) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on ``port``; yields its base URL, stops on exit.

    The caller picks the port (``free_port``) because the app's settings need
    their ``base_url`` before the app exists.
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
