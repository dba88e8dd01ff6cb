"""Lean local stand-ins for the providers, fit for a million recipients.

Why not ``newsletter.testing``'s fakes: ``FakeSendGrid`` keeps every parsed
request body (a million personalizations is gigabytes) and runs SendGrid's 400
checks, and ``SmtpSink`` keeps every message's bytes (about 60 KB each).  These
keep counts only, so their memory stays flat and their CPU cost is what any
receiver must pay: the SendGrid stand-in still parses every JSON body and counts
its personalizations and ledger ids; the SMTP sinks speak real SMTP over a
socket, dot-unstuffing included.

``RawSmtpSink`` is a minimal asyncio SMTP server.  aiosmtpd, even with a
handler that only counts, took 430-970 messages/s where this takes 2,000-3,000
(BENCHMARKS.md), so it would have measured itself rather than the sender.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

API_KEY = "SG.bench-key"


class LeanSendGrid:
    """``POST /v3/mail/send``: parse the JSON, count personalizations, answer 202."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.requests = 0
        self.personalizations = 0
        self.ledger_ids: set[str] = set()
        self.duplicates = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._server = _HTTPServer(("127.0.0.1", 0), _SendGridHandler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        with self._lock:
            self.requests = self.personalizations = self.duplicates = self.bytes = 0
            self.ledger_ids = set()

    def answer(self, path: str, authorization: str | None, raw: bytes) -> int:
        if path != "/v3/mail/send":
            return 404
        if authorization != f"Bearer {self.api_key}":
            return 401
        try:
            body = json.loads(raw)
            items = body["personalizations"]
            ids = [str(p["custom_args"]["ledger_id"]) for p in items]
        except (ValueError, KeyError, TypeError):
            return 400
        if not 0 < len(items) <= 1000 or not body.get("content"):
            return 400
        with self._lock:
            self.requests += 1
            self.bytes += len(raw)
            self.personalizations += len(items)
            before = len(self.ledger_ids)
            self.ledger_ids.update(ids)
            self.duplicates += len(ids) - (len(self.ledger_ids) - before)
        return 202


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, fake: LeanSendGrid) -> None:
        super().__init__(address, handler)
        self.fake = fake


class _SendGridHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.fake.answer(self.path, self.headers.get("Authorization"), raw)
        self.send_response(status)
        if status == 202:
            self.send_header("X-Message-Id", uuid.uuid4().hex[:22])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would dominate the benchmark's output."""


# --- SMTP ------------------------------------------------------------------------


class _Counts:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.connections = 0
        self.recipients: set[str] = set()
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.messages = self.bytes = self.connections = 0
            self.recipients = set()


class RawSmtpSink(_Counts):
    """A minimal SMTP server (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that counts mail."""

    name = "raw asyncio SMTP sink"

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __enter__(self) -> Self:
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(lambda: _SmtpProtocol(self), "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def host(self) -> str:
        return "127.0.0.1"


class _SmtpProtocol(asyncio.Protocol):
    def __init__(self, sink: RawSmtpSink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.in_data = False
        self.rcpts: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        with self.sink.lock:
            self.sink.connections += 1
        self._reply(b"220 sink.test ESMTP bench sink")

    def _reply(self, line: bytes) -> None:
        assert self.transport is not None
        self.transport.write(line + b"\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                body = (b"\r\n" + self.buffer[: end + 2]).replace(b"\r\n..", b"\r\n.")[2:]
                del self.buffer[: end + 5]
                self.in_data = False
                with self.sink.lock:
                    self.sink.messages += 1
                    self.sink.bytes += len(body)
                    self.sink.recipients.update(self.rcpts)
                self.rcpts = []
                self._reply(b"250 2.0.0 OK queued")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            self._command(line)

    def _command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb == b"EHLO":
            assert self.transport is not None
            self.transport.write(b"250-sink.test\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif verb == b"HELO":
            self._reply(b"250 sink.test")
        elif verb == b"MAIL":
            self.rcpts = []
            self._reply(b"250 2.1.0 OK")
        elif verb == b"RCPT":
            address = line.partition(b":")[2].strip().strip(b"<>").split(b">")[0]
            self.rcpts.append(address.decode("ascii", "replace"))
            self._reply(b"250 2.1.5 OK")
        elif verb == b"DATA":
            self.in_data = True
            self._reply(b"354 End data with <CR><LF>.<CR><LF>")
        elif verb in (b"RSET", b"NOOP"):
            self.rcpts = []
            self._reply(b"250 OK")
        elif verb == b"QUIT":
            self._reply(b"221 Bye")
            assert self.transport is not None
            self.transport.close()
        else:
            self._reply(b"502 5.5.2 command not implemented")
