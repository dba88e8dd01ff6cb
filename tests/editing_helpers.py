"""Images and a local image server for the editing tests (admin and browser)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def png(
    width: int = 1200, height: int = 800, colour: tuple[int, int, int] = (13, 74, 107)
) -> bytes:
    """A real PNG (opaque, so it is stored as JPEG variants)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@contextmanager
def image_server(images: dict[str, bytes]) -> Iterator[str]:
    """``/<name>`` answers the image, ``/hang`` never answers, anything else 404."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            if name == "hang":
                stop.wait(30)
                return
            body = images.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        time.sleep(0)
        server.shutdown()
        server.server_close()


@contextmanager
def bucket_server() -> Iterator[tuple[str, dict[str, tuple[bytes, dict[str, str]]]]]:
    """A minimal S3-compatible endpoint: PUT /<bucket>/<key> is kept with its headers."""
    stored: dict[str, tuple[bytes, dict[str, str]]] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            stored[self.path] = (body, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("etag", '"0"')
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", stored
    finally:
        server.shutdown()
        server.server_close()
