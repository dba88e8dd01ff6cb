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
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.web.templating import page


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes the limit."""


class BodyLimit:
    """Pure ASGI middleware: no buffering; the limit depends on the path."""

    def __init__(
        self, app: ASGIApp, *, default: int, uploads: int, upload_paths: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.default, self.uploads = default, uploads
        self.upload_paths = tuple(upload_paths)

    def limit_for(self, path: str) -> int:
        return self.uploads if path in self.upload_paths else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
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
            await _refuse(scope, receive, send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(path: str) -> bool:
    return path.startswith(("/api/", "/admin/api/")) or path == "/api"


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    size = f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    message = f"the request is larger than the {size} this server accepts"
    response: Response
    if _is_json(scope["path"]):
        response = JSONResponse({"detail": message}, status_code=413)
    else:
        response = page(Request(scope, receive), "error.html.j2", 413, title="Too large",
                        message=message, expired=False)  # fmt: skip
    response.headers["connection"] = "close"  # the rest of the body is never read
    await response(scope, receive, send)
