"""Preflight fetches each image once, against a real local HTTP server.

The server answers a small PNG, a 404, a 2 MB image (declared and, once,
undeclared), an HTML page, and one URL that never answers; it counts requests so
the cache is visible: a second preflight, or the same image twice, fetches nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from issue_helpers import THEME, issue, item

from newsletter.config import Settings
from newsletter.db import connect
from newsletter.issues import store
from newsletter.issues.preflight import ImageCheck, inspect
from newsletter.render import ImageContent, Renderer, SectionContent, render_issue
from tests.admin_helpers import fast_hashing, load_issue_42, signed_in_client  # noqa: F401

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)
HUGE = 2_000_000


@dataclass
class ImageServer:
    url: str
    hits: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(state: ImageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.hits[self.path] += 1
            if self.path == "/never.png":
                state.release.wait(30)  # holds the connection open, says nothing
                return
            if self.path == "/ok.png":
                self._send(200, "image/png", PNG)
            elif self.path == "/huge.jpg":
                self._send(200, "image/jpeg", b"\xff" * HUGE)
            elif self.path == "/huge-streamed.jpg":
                self._stream_without_length(b"\xff" * HUGE)
            elif self.path == "/page.html":
                self._send(200, "text/html; charset=utf-8", b"<p>not an image</p>")
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)  # the checker stops reading once it knows enough

        def _stream_without_length(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("content-type", "image/jpeg")
            self.send_header("connection", "close")  # the body ends when the connection does
            self.end_headers()
            self.close_connection = True
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[ImageServer]:
    state = ImageServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def _email_with_images(server: ImageServer, *names: str, alt: str = "An image") -> object:
    cards = tuple(
        item(f"Card {n}", image=ImageContent(f"{server.url}/{name}", alt=alt))
        for n, name in enumerate(names)
    )
    return render_issue(issue(SectionContent("S", (), cards)), theme=THEME, renderer=Renderer())


def test_each_kind_of_bad_image_is_a_warning_and_each_url_is_fetched_once(
    server: ImageServer,
) -> None:
    names = (
        "ok.png",
        "missing.png",
        "huge.jpg",
        "huge-streamed.jpg",
        "page.html",
        "never.png",
        "ok.png",
    )
    rendered = _email_with_images(server, *names)
    check = ImageCheck(timeout=0.5)
    started = time.monotonic()
    report = inspect(rendered, images=check)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert report.problems == []  # warnings only: an image host never blocks a send
    assert report.warnings == [
        f"image '{server.url}/missing.png' is broken: the server answered 404",
        f"image '{server.url}/huge.jpg' is over 1 MB; large images load slowly and some clients leave them out",
        f"image '{server.url}/huge-streamed.jpg' is over 1 MB; large images load slowly and some clients leave them out",
        f"image '{server.url}/page.html' is not an image (the server sent text/html)",
        f"image '{server.url}/never.png' did not answer within 0.5 s",
    ]  # fmt: skip
    assert elapsed < 3  # in parallel: the silent one costs one timeout, not one per image
    assert server.hits["/ok.png"] == 1  # the same image twice in the email: one request
    assert check.fetches == 6

    again = inspect(rendered, images=check)  # type: ignore[arg-type]
    assert again.warnings == report.warnings
    assert sum(server.hits.values()) == 6 and check.fetches == 6  # all from the cache


def test_failures_are_retried_sooner_than_good_images(server: ImageServer) -> None:
    now = [1000.0]
    check = ImageCheck(timeout=0.5, ttl=600, retry_after=60, clock=lambda: now[0])
    urls = [f"{server.url}/ok.png", f"{server.url}/missing.png"]
    assert len(check.warnings(urls)) == 1
    now[0] += 61
    assert len(check.warnings(urls)) == 1
    assert server.hits == Counter({"/ok.png": 1, "/missing.png": 2})  # only the failure again
    now[0] += 600
    check.warnings(urls)
    assert server.hits == Counter({"/ok.png": 2, "/missing.png": 3})


def test_unreachable_host_and_missing_alt(server: ImageServer) -> None:
    from tests.browser_helpers import free_port

    closed = f"http://127.0.0.1:{free_port()}/gone.png"  # nothing listens there
    card = item(image=ImageContent(closed, alt=""))
    rendered = render_issue(
        issue(SectionContent("S", (), (card,))), theme=THEME, renderer=Renderer()
    )
    report = inspect(rendered, images=ImageCheck(timeout=0.5))
    assert report.problems == [f"image {closed!r} has no alt text"]
    assert len(report.warnings) == 1 and report.warnings[0].startswith(
        f"image {closed!r} could not be fetched:"
    )


def test_without_a_checker_nothing_is_fetched(server: ImageServer) -> None:
    rendered = _email_with_images(server, "missing.png")
    assert inspect(rendered).warnings == []  # type: ignore[arg-type]
    assert sum(server.hits.values()) == 0


def test_the_editor_warns_about_images_and_fetches_each_once(
    server: ImageServer, make_settings: Callable[..., Settings], seeds_dir: Path
) -> None:
    settings = make_settings(preflight_fetch_images=True)
    db = connect(settings)
    try:
        load_issue_42(db, settings, seeds_dir)
        client = signed_in_client(db, settings, "editor")
        with db.session() as session:
            issue = store.get_issue(42, session=session)
            first, second = [i.id for s in issue.sections for i in s.items][:2]
        for item_id, name in ((first, "missing.png"), (second, "huge.jpg")):  # no preflight yet
            saved = client.form(
                f"/admin/issues/42/items/{item_id}", {"image_url": f"{server.url}/{name}"}
            )
            assert saved.status_code == 303
        page = client.get("/admin/issues/42").text
        assert (
            f"image &#39;{server.url}/missing.png&#39; is broken: the server answered 404" in page
        )
        assert f"image &#39;{server.url}/huge.jpg&#39; is over 1 MB" in page
        autosave = client.form("/admin/issues/42/details", {
            "title": "Issue 42: April 2018", "subject": "Another subject", "date": "2018-04-01",
        }, headers={"X-Admin-Fragment": "1"})  # fmt: skip
        assert autosave.status_code == 200 and "is broken" in autosave.text
        assert server.hits == Counter({"/missing.png": 1, "/huge.jpg": 1})  # cached per app
    finally:
        db.dispose()


ARTICLE_ISSUE = """\
number: 7
title: "Issue 7: July 2018"
date: 2018-07-01
subject: "Issue 7"
sections:
  - heading: News
    items:
      - title: An article
        url: https://example.org/a
        body: Some text.
        image:
          url: {url}/missing.png
          alt: A chart of the results
"""


def test_issue_preflight_in_the_cli_warns_and_still_passes(
    server: ImageServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from newsletter.cli import main

    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("NEWSLETTER_PREFLIGHT_FETCH_IMAGES", "true")
    monkeypatch.setenv("COLUMNS", "200")
    source = tmp_path / "007-2018-07.yaml"
    source.write_text(ARTICLE_ISSUE.format(url=server.url))
    with pytest.raises(SystemExit) as done:
        main(["issue", "preflight", str(source)])
    out, err = capsys.readouterr()
    assert (done.value.code or 0) == 0 and "preflight ok" in out
    assert f"warning: image '{server.url}/missing.png' is broken: the server answered 404" in err
    assert server.hits["/missing.png"] == 1
