"""``GET /r/{token}`` (a tracked link) and ``GET /o/{token}.gif`` (the open pixel).

Lean Starlette endpoints on the hot path: no dependency injection, no form
parsing, no database on the way unless a link is not cached yet.  A token
that is not ours (forged, truncated, unknown) gets a small HTML page with
status 404 and never a redirect: the destination only ever comes from the
issue's stored links, never from the request, so there is no open redirect.
The pixel always answers 200 with a transparent GIF.
"""

from __future__ import annotations

from base64 import b64decode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from newsletter.tracking.recorder import Recorder

GIF = b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"cache-control": "no-store, private", "referrer-policy": "no-referrer"}
NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>This link does not work</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/site.css"></head>
<body><main class="page"><h1>This link does not work</h1>
<p>The link may have been cut off or mistyped. Open it again from the email, or go to the
<a href="/archive">newsletter archive</a>.</p></main></body></html>
"""


def _recorder(request: Request) -> Recorder:
    recorder: Recorder = request.app.state.recorder
    return recorder


def _client(request: Request) -> tuple[str, str | None]:
    return request.headers.get("user-agent", ""), request.client.host if request.client else None


async def click(request: Request) -> Response:
    recorder = _recorder(request)
    hit = recorder.verify_click(request.path_params["token"])
    if hit is None:
        return HTMLResponse(NOT_FOUND, status_code=404, headers=NO_STORE)
    user_agent, ip = _client(request)
    head = request.method == "HEAD"
    url = recorder.click(hit, head=head, user_agent=user_agent, ip=ip, lookup=False)
    if url is None:  # not cached yet: ask the database, off the event loop
        url = await run_in_threadpool(
            lambda: recorder.click(hit, head=head, user_agent=user_agent, ip=ip)
        )
    if url is None:
        return HTMLResponse(NOT_FOUND, status_code=404, headers=NO_STORE)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


async def pixel(request: Request) -> Response:
    user_agent, ip = _client(request)
    token = request.path_params["token"]
    _recorder(request).open(token, head=request.method == "HEAD", user_agent=user_agent, ip=ip)
    return Response(GIF, media_type="image/gif", headers=NO_STORE)


async def health(_request: Request) -> Response:
    """For load balancers and monitoring; also the benchmark's bare route of the same app."""
    return PlainTextResponse("ok", headers={"cache-control": "no-store"})


ROUTES = [
    Route("/healthz", health, methods=["GET", "HEAD"]),
    Route("/r/{token}", click, methods=["GET", "HEAD"]),
    Route("/o/{token}.gif", pixel, methods=["GET", "HEAD"]),
]
