"""A limit on every request body, enforced while it streams in (ASGI middleware).

A declared ``Content-Length`` over the limit is refused before a byte is read;
a body without one (chunked) is counted as it arrives and refused the moment
it passes the limit, whatever the handler was doing with it: the app's own
answer is replaced by 413.  Imports get their own, larger limit
(``import_max_bytes``); everything else ``request_max_bytes``.  Browsers get an
HTML page, the JSON APIs one line of JSON.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.web.templating import page


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes the limit."""


class BodyLimit:
    """Pure ASGI middleware: no buffering; the limit depends on the path."""

    def __init__(
        self, app: ASGIApp, *, default: int, uploads: int, upload_paths: Sequence[str] = (),
        path_limits: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self.default, self.uploads = default, uploads
        self.upload_paths = tuple(upload_paths)
        # A path with a limit of its own, and what its body is called in the refusal.
        self.path_limits = dict(path_limits or {})

    def limit_for(self, path: str) -> int:
        if path in self.path_limits:
            return self.path_limits[path][0]
        return self.uploads if path in self.upload_paths else self.default

    def what(self, path: str) -> str:
        return self.path_limits[path][1] if path in self.path_limits else "request"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit, self.what(scope["path"]))
            return
        state = {"seen": 0, "over": False, "started": False}

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit:
                    state["over"] = True
                    raise BodyTooLarge()
            return message

        async def guarded(message: Message) -> None:
            if state["over"]:
                return  # the app's answer to a body it could not finish reading
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):  # the handler stopped reading: answer 413
            await self.app(scope, counted, guarded)
        if state["over"] and not state["started"]:
            await _refuse(scope, receive, send, limit, self.what(scope["path"]))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    """The JSON APIs, and the admin editor's scripted requests (they show ``detail``)."""
    path = scope["path"]
    scripted = (b"x-admin-fragment", b"1") in scope.get("headers", [])
    return path.startswith(("/api/", "/admin/api/")) or path == "/api" or scripted


async def _refuse(
    scope: Scope, receive: Receive, send: Send, limit: int, what: str = "request"
) -> None:
    size = f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    message = f"the {what} is larger than the {size} this server accepts; nothing was saved"
    response: Response
    if _is_json(scope):
        response = JSONResponse({"detail": message}, status_code=413)
    else:
        response = page(Request(scope, receive), "error.html.j2", 413, title="Too large",
                        message=message, expired=False)  # fmt: skip
    response.headers["connection"] = "close"  # the rest of the body is never read
    await response(scope, receive, send)
