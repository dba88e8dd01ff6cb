"""A real local website for the sources and link-health tests: feeds, pages, redirects, traps.

A ``ThreadingHTTPServer`` on 127.0.0.1 and a free port, serving ``Site.pages``
(path -> ``Page``) on a thread.  Each page can carry an ETag (a matching
If-None-Match gets 304), redirect elsewhere, refuse HEAD (405), answer slowly
or stream an endless-looking body; ``requests`` records what arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None  # a matching If-Modified-Since gets 304
    location: str | None = None  # a redirect (status 301/302/...)
    head: bool = True  # False: HEAD is answered 405
    slow: float = 0.0  # seconds before answering
    stream_bytes: int = 0  # >0: that many bytes, chunked, no length


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Site:
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def seen(self, path: str, method: str = "GET") -> list[Seen]:
        return [r for r in self.requests if r.path == path and r.method == method]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            return None

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            site.requests.append(Seen(self.command, self.path, dict(self.headers.items())))
            page = site.pages.get(self.path)
            if page is None:
                return self._send(404, "text/plain", b"not found", head)
            if page.slow:
                site.release.wait(page.slow)
            if head and not page.head:
                return self._send(405, "text/plain", b"", head)
            if page.location is not None:
                self.send_response(page.status)
                self.send_header("location", page.location)
                self.send_header("content-length", "0")
                self.end_headers()
                return None
            modified = page.last_modified
            if modified and self.headers.get("if-modified-since") == modified:
                return self._send(304, page.content_type, b"", True, page.etag)
            if page.etag and self.headers.get("if-none-match") == page.etag:
                self.send_response(304)
                self.send_header("etag", page.etag)
                self.send_header("content-length", "0")
                self.end_headers()
                return None
            if page.stream_bytes:
                return self._stream(page, head)
            return self._send(page.status, page.content_type, page.body, head, page.etag, modified)

        def _send(
            self, status: int, kind: str, body: bytes, head: bool, etag: str | None = None,
            modified: str | None = None,
        ) -> None:  # fmt: skip
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            if etag:
                self.send_header("etag", etag)
            if modified:
                self.send_header("last-modified", modified)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _stream(self, page: Page, head: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", page.content_type)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if head:
                return
            chunk = b"x" * 65536
            sent = 0
            try:
                while sent < page.stream_bytes:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client hung up at its size limit, as it should
                self.close_connection = True

    return Handler


@contextmanager
def serving(site: Site) -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.release.set()
        server.shutdown()
        server.server_close()


def rss(*items: tuple[str, str], title: str = "Example feed") -> bytes:
    """An RSS 2.0 feed of (title, link) items."""
    entries = "".join(
        f"<item><title>{t}</title><link>{link}</link><description>About {t}.</description></item>"
        for t, link in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://example.org/</link><description>d</description>{entries}</channel></rss>"
    ).encode()
