"""A local stand-in for SendGrid's v3 ``POST /v3/mail/send``, scripted per request.

Why a real HTTP server and not a mock: the messenger's hardest cases are on
the wire (a read timeout after the body was sent, a refused connection, a 413
that forces a split), and only a socket reproduces them faithfully.

The fake answers each request in this order:

1. wrong path -> 404; missing or wrong ``Authorization: Bearer <key>`` -> 401;
2. more personalizations than ``max_personalizations`` -> 413 (so tests can
   exercise splitting without building 30 MB bodies);
3. a request SendGrid itself would refuse (no ``from``, over 1000
   personalizations, a duplicate address, ``,`` or ``;`` in ``to.name``,
   non-string ``custom_args`` ...) -> 400 with SendGrid-style ``errors``;
4. otherwise the next scripted ``Reply`` (``replies`` / ``push``), falling back
   to 202 with a unique ``X-Message-Id``.

A reply with ``hang`` reads the whole body, then waits that long before
answering (its status still counts: SendGrid may well have sent the mail even
though the client gave up), which is how a read timeout looks to the client.

    with FakeSendGrid(api_key="SG.test") as server:
        server.push(Reply.rate_limited(reset_in=1), Reply(500), Reply(202))
        messenger = SendGridMessenger("SG.test", host=server.url)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

MAIL_SEND = "/v3/mail/send"
MAX_PERSONALIZATIONS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: status, headers, JSON (or raw) body, optional hang."""

    status: int = 202
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    hang: float = 0.0

    @classmethod
    def error(cls, status: int, *messages: str, headers: Mapping[str, str] | None = None) -> Reply:
        """An error in SendGrid's shape: ``{"errors": [{"message", "field", "help"}]}``."""
        errors = [{"message": m, "field": None, "help": None} for m in messages or ("error",)]
        return cls(status, headers=dict(headers or {}), body={"errors": errors})

    @classmethod
    def rate_limited(cls, reset_in: float = 1.0) -> Reply:
        """429 with ``X-RateLimit-Reset`` ``reset_in`` seconds from now (a Unix timestamp)."""
        reset = str(int(time.time() + reset_in))
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        }
        return cls.error(429, "too many requests", headers=headers)

    @classmethod
    def hanging(cls, seconds: float = 5.0, status: int = 202) -> Reply:
        """Read the request, then answer only after ``seconds`` (past the client's timeout)."""
        return cls(status, hang=seconds)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What one request carried and how the fake answered it."""

    path: str
    authorized: bool
    body: JSON | None
    status: int
    message_id: str | None

    @property
    def personalizations(self) -> list[JSON]:
        return list((self.body or {}).get("personalizations") or [])

    @property
    def ledger_ids(self) -> list[str]:
        return [str(p.get("custom_args", {}).get("ledger_id")) for p in self.personalizations]

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class FakeSendGrid:
    """A threaded HTTP server on 127.0.0.1 speaking just enough of SendGrid's mail/send."""

    def __init__(
        self,
        api_key: str | None = "SG.test-key",
        *,
        replies: Iterable[Reply] = (),
        max_personalizations: int | None = None,
    ) -> None:
        """``api_key=None`` accepts any bearer token."""
        self.api_key = api_key
        self.max_personalizations = max_personalizations
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSendGrid is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # scripting and inspection ---------------------------------------------

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def accepted_ledger_ids(self) -> Counter[str]:
        """Ledger ids per accepted (2xx) request, so tests can assert "each exactly once"."""
        with self._lock:
            return Counter(i for r in self.requests if r.accepted for i in r.ledger_ids)

    # answering ---------------------------------------------------------------

    def answer(self, path: str, authorization: str | None, raw: bytes) -> Reply:
        """Decide, record and return the reply for one request (called by the handler)."""
        authorized = self._authorized(authorization)
        body = _parse(raw)
        with self._lock:
            reply = self._decide(path, authorized, body)
            message_id = reply.headers.get("X-Message-Id")
            if 200 <= reply.status < 300 and message_id is None:
                message_id = uuid.uuid4().hex[:22]
                reply = Reply(
                    reply.status,
                    {**reply.headers, "X-Message-Id": message_id},
                    reply.body,
                    reply.hang,
                )
            self.requests.append(RecordedRequest(path, authorized, body, reply.status, message_id))
        return reply

    def _authorized(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return self.api_key is None or authorization == f"Bearer {self.api_key}"

    def _decide(self, path: str, authorized: bool, body: JSON | None) -> Reply:
        if path != MAIL_SEND:
            return Reply.error(404, "not found")
        if not authorized:
            return Reply.error(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )
        if body is None:
            return Reply.error(400, "Bad Request: the body is not a JSON object")
        count = len(body.get("personalizations") or [])
        if self.max_personalizations is not None and count > self.max_personalizations:
            return Reply.error(
                413, "The JSON payload you have included in your request is too large."
            )
        problems = validate(body)
        if problems:
            return Reply.error(400, *problems)
        return self.replies.popleft() if self.replies else Reply(202)

    def wait(self, seconds: float) -> None:
        """Sleep for a hanging reply, cut short when the server stops."""
        self._stopping.wait(seconds)


def _parse(raw: bytes) -> JSON | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def validate(body: JSON) -> list[str]:
    """The subset of SendGrid's 400 checks our messenger could plausibly trip over."""
    problems: list[str] = []
    if not isinstance(body.get("from"), dict) or not body["from"].get("email"):
        problems.append("The from object must be provided for every email send.")
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return [*problems, "You must have at least one personalization."]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        problems.append(
            "The personalization block is limited to 1000 personalizations per API request. "
            f"You have provided {len(personalizations)} personalizations."
        )
    problems += _check_personalizations(personalizations, body)
    problems += _check_content(body)
    return problems


def _check_personalizations(personalizations: list[Any], body: JSON) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(personalizations):
        tos = item.get("to") if isinstance(item, dict) else None
        if not isinstance(tos, list) or not tos or not all(isinstance(t, dict) for t in tos):
            problems.append(f"personalizations.{index}.to: The to array is required.")
            continue
        for to in tos:
            email = str(to.get("email", "")).lower()
            if not email:
                problems.append(f"personalizations.{index}.to: each to object needs an email")
            elif email in seen:
                problems.append(
                    "Each unique email address in the personalizations array should only be "
                    "included once. You have included email address more than once."
                )
            seen.add(email)
            if any(ch in str(to.get("name", "")) for ch in ",;"):
                problems.append(f"personalizations.{index}.to.name cannot include ; or ,")
        problems += _check_strings(index, item)
        if not item.get("subject") and not body.get("subject"):
            problems.append("The subject is required. You can get around this requirement ...")
        args = {**(body.get("custom_args") or {}), **(item.get("custom_args") or {})}
        if len(json.dumps(args).encode()) >= MAX_CUSTOM_ARGS_BYTES:
            problems.append("The total length of custom arguments must be less than 10000 bytes.")
    return problems


def _check_strings(index: int, item: JSON) -> list[str]:
    problems = []
    for key in ("substitutions", "headers", "custom_args"):
        values = item.get(key, {})
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            problems.append(f"personalizations.{index}.{key}: Invalid type. Expected: string.")
    return problems


def _check_content(body: JSON) -> list[str]:
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return ["Unless a valid template_id is provided, the content parameter is required."]
    types = [c.get("type") for c in content if isinstance(c, dict)]
    problems = []
    if any(not (isinstance(c, dict) and c.get("value")) for c in content):
        problems.append("The content value must be a string at least one character in length.")
    if "text/plain" in types and types.index("text/plain") != 0:
        problems.append("If present, text/plain and text/html may only be provided in order.")
    return problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler never blocks shutdown

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], fake: FakeSendGrid
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test) is expected; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.server.fake
        reply = fake.answer(self.path, self.headers.get("Authorization"), raw)
        if reply.hang:
            fake.wait(reply.hang)
        self._write(reply)

    def do_GET(self) -> None:
        self._write(Reply.error(405, "method not allowed"))

    def _write(self, reply: Reply) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line: benchmarks send thousands."""
