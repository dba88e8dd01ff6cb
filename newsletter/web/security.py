"""Security headers on every response.

The pages use no scripts at all and only our own stylesheet, so the CSP can
be strict: nothing inline, no framing (clickjacking on the unsubscribe and
preference buttons), and no Referer (tokens live in page URLs).  Responses are
not cached because pages show an address and carry tokens.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The sign-up page alone runs one file of ours, /static/timezone.js (never inline): it
# fills the hidden time_zone field for local-time sending.
SIGNUP_CSP = f"script-src 'self'; {CSP}"
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")


def email_image_sources(base_url: str) -> str:
    """``img-src`` for pages that show an email (the editor's preview, the web version).

    Images over https; over plain http too when the site itself is plain http
    (local use, where images are often served beside it), since a browser would
    not load them on an https page anyway.
    """
    return "https: http: data:" if base_url.startswith("http://") else "https: data:"


class SecurityHeaders:
    """Pure ASGI middleware (no buffering, background tasks unaffected)."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.extra = (*HEADERS, HSTS) if https else HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.extra if h[0] not in present)
                if not static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
