"""Real local HTTP servers that receive webhooks: verifying, flaky, hanging, and down.

Each is a ``ThreadingHTTPServer`` on 127.0.0.1 and a free port, serving on a
thread; a test reads what arrived from ``requests``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from newsletter.automation.webhooks.signing import SIGNATURE_HEADER, verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: this receiver does not check signatures

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the server does: answer ``codes`` in turn (the last one repeats), or hang."""

    codes: list[int] = field(default_factory=lambda: [200])
    secret: str | None = None  # set: verify each signature against ``now()``
    now: Callable[[], float] = time.time
    hang: threading.Event | None = None  # set: hold each request until this is set
    requests: list[Received] = field(default_factory=list)
    holding: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/newsletter"


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            verified = None
            if receiver.secret is not None:
                verified = verify(
                    receiver.secret, self.headers.get(SIGNATURE_HEADER, ""), body,
                    now=int(receiver.now()),
                )  # fmt: skip
            receiver.requests.append(Received(dict(self.headers.items()), body, verified))
            if receiver.hang is not None:
                receiver.holding += 1
                receiver.hang.wait(30)
                receiver.holding -= 1
                return
            index = min(len(receiver.requests), len(receiver.codes)) - 1
            code = receiver.codes[index]
            if receiver.secret is not None and not verified:
                code = 400
            answer = json.dumps({"ok": 200 <= code < 300, "n": len(receiver.requests)}).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def serving(receiver: Receiver) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hang is not None:
            receiver.hang.set()
        server.shutdown()
        server.server_close()


def down_url() -> str:
    """A URL on a port nothing listens on (bound, then closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/down"
