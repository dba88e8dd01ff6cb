"""Pre-send checks on a rendered email: everything that would embarrass us in an inbox.

Run by ``newsletter issue preflight`` and before every send (``check_or_raise``).
It inspects the *rendered* email (placeholders still in), so it checks exactly
what goes out, whatever template or theme produced it.  The default templates
mark their structure with classes this module looks for: ``nl-section`` around
each section, ``nl-item`` on each card, ``postal-address`` on the address.

The editor and ``issue preflight`` also fetch every image (``ImageCheck``): once
per URL, in parallel, with a timeout, and cached, so an editor's autosave does
not fetch again.  What they find are warnings: an image host being down must
not block a send that was checked, and sending never waits on the network.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser

import httpx

from newsletter.errors import PreflightError
from newsletter.message import FIELDS, RenderedEmail, Template

GMAIL_CLIP_BYTES = 102_000  # Gmail hides everything after ~102 KB behind "[Message clipped]"
SUBJECT_MAX = 150
SUBJECT_WARN = 78  # longer subjects are cut off in most inbox lists
# What a per-recipient URL may grow to once filled, for the size check.
SAMPLE_VALUES = {name: "x" * 160 for name in FIELDS}
_PLACEHOLDER_ONLY = re.compile(r"^%%[a-z_]+(:html)?%%$")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


@dataclass
class _Open:
    tag: str
    section: bool = False
    items: int = 0
    address: bool = False


class _Scan(HTMLParser):
    """One pass over the HTML collecting links, images and the structural markers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.images: list[tuple[str, str]] = []  # (src, alt)
        self.section_items: list[int] = []  # items per closed section
        self.item_total = 0
        self.address_text: list[str] = []
        self.stack: list[_Open] = []
        self.anchor: list[str] | None = None
        self.href = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = set(values.get("class", "").split())
        if tag == "img":
            self.images.append((values.get("src", ""), values.get("alt", "").strip()))
        if tag == "a" and "href" in values:
            self.anchor, self.href = [], values["href"].strip()
        if "nl-item" in classes:
            self.item_total += 1
            for entry in reversed(self.stack):
                if entry.section:
                    entry.items += 1
                    break
        if tag not in VOID:
            entry = _Open(tag, "nl-section" in classes, 0, "postal-address" in classes)
            self.stack.append(entry)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.anchor is not None:
            self.links.append((self.href, " ".join("".join(self.anchor).split())))
            self.anchor = None
        while self.stack:
            entry = self.stack.pop()
            if entry.section:
                self.section_items.append(entry.items)
            if entry.tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.anchor is not None:
            self.anchor.append(data)
        if any(entry.address for entry in self.stack):
            self.address_text.append(data)


def _scan(html: str) -> _Scan:
    scan = _Scan()
    scan.feed(html)
    scan.close()
    scan.handle_endtag("")  # close whatever is left open
    return scan


def _link_problem(href: str) -> str | None:
    if _PLACEHOLDER_ONLY.match(href) or href.startswith("mailto:"):
        return None
    if re.match(r"^https?://[^/\s]+", href, re.IGNORECASE):
        return None
    return f"link {href!r} is not an absolute http(s) URL"


def _link_checks(scan: _Scan) -> list[str]:
    problems = [p for href, _ in scan.links if (p := _link_problem(href))]
    for src, alt in scan.images:
        if not alt:
            problems.append(f"image {src or '(no src)'!r} has no alt text")
        if not re.match(r"^https?://[^/\s]+", src, re.IGNORECASE):
            problems.append(f"image {src or '(no src)'!r} is not an absolute http(s) URL")
    return problems


def _has_unsubscribe(scan: _Scan) -> bool:
    return any(
        "%%unsubscribe_url" in href or "unsubscribe" in text.casefold() for href, text in scan.links
    )


def _footer_checks(scan: _Scan, rendered: RenderedEmail) -> list[str]:
    problems = []
    if not _has_unsubscribe(scan):
        problems.append("no unsubscribe link in the HTML part")
    if "unsubscribe" not in rendered.text.casefold():
        problems.append("no unsubscribe link in the text part")
    if "List-Unsubscribe" not in rendered.headers:
        problems.append("no List-Unsubscribe header")
    if not "".join(scan.address_text).strip():
        problems.append("no postal address in the footer (class 'postal-address')")
    return problems


def _structure_checks(scan: _Scan) -> list[str]:
    problems = []
    if scan.item_total == 0:
        problems.append("the issue has no items")
    empty = sum(1 for count in scan.section_items if count == 0)
    if empty:
        problems.append(f"{empty} empty section(s): every section needs at least one item")
    return problems


def _size_problem(rendered: RenderedEmail) -> str | None:
    filled = Template.compile(rendered).fill(SAMPLE_VALUES).html
    size = len(filled.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        return f"HTML is {size:,} bytes; Gmail clips messages over {GMAIL_CLIP_BYTES:,} bytes"
    return None


def _subject_problem(subject: str) -> str | None:
    length = len(subject.strip())
    if not 1 <= length <= SUBJECT_MAX:
        return f"subject is {length} characters (must be 1..{SUBJECT_MAX})"
    return None


# --- images, fetched -------------------------------------------------------------------

IMAGE_MAX_BYTES = 1_000_000  # heavier images load slowly on phones and count against data plans
IMAGE_TIMEOUT_SECONDS = 5.0
_CHUNK = 64 * 1024


class ImageCheck:
    """Fetches each image once and says what is wrong with it (``None``: nothing).

    Results are cached per URL (``ttl`` seconds for a good image, ``retry_after``
    for a failure, so a fixed image is seen again soon); concurrent callers share
    one fetch.  Only a GET with no cookies, read to at most ``max_bytes`` + 1 and
    reported as a status, a type and a size.  One per process or app is plenty.
    """

    def __init__(
        self, *, timeout: float = IMAGE_TIMEOUT_SECONDS, max_bytes: int = IMAGE_MAX_BYTES,
        ttl: float = 600.0, retry_after: float = 60.0, max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.timeout, self.max_bytes = timeout, max_bytes
        self.ttl, self.retry_after, self.max_entries = ttl, retry_after, max_entries
        self.clock = clock
        self.fetches = 0  # requests actually made (what the cache saves is visible)
        self._cache: OrderedDict[str, tuple[float, Future[str | None]]] = OrderedDict()
        self._lock = threading.Lock()

    def warnings(self, urls: Iterable[str]) -> list[str]:
        """One line per image with a problem, in the email's order (each URL once)."""
        wanted = [u for u in dict.fromkeys(urls) if re.match(r"^https?://", u, re.IGNORECASE)]
        if not wanted:
            return []
        with (
            httpx.Client(timeout=self.timeout, follow_redirects=True) as client,
            ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool,
        ):
            futures = [
                self._future(url, lambda u: pool.submit(self._fetch, client, u)) for url in wanted
            ]
            return [found for future in futures if (found := future.result())]

    def _future(self, url: str, submit: Callable[[str], Future[str | None]]) -> Future[str | None]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and (not cached[1].done() or cached[0] > now):
                self._cache.move_to_end(url)
                return cached[1]
            future = submit(url)
            self.fetches += 1
            self._cache[url] = (now + self.ttl, future)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        # Outside the lock: a future already done runs its callback here, at once.
        future.add_done_callback(lambda done: self._expire(url, done))
        return future

    def _expire(self, url: str, done: Future[str | None]) -> None:
        """A failure is kept for ``retry_after`` only (counted from when it finished)."""
        if done.result() is None:
            return
        with self._lock:
            if url in self._cache and self._cache[url][1] is done:
                self._cache[url] = (self.clock() + self.retry_after, done)

    def _fetch(self, client: httpx.Client, url: str) -> str | None:
        deadline = time.monotonic() + self.timeout  # a trickle of bytes counts as no answer
        try:
            with client.stream("GET", url, headers={"accept": "image/*"}) as response:
                return self._judge(url, response, deadline)
        except httpx.TimeoutException:
            return self._slow(url)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            reason = str(exc).strip() or type(exc).__name__
            return f"image {url!r} could not be fetched: {reason[:200]}"

    def _judge(self, url: str, response: httpx.Response, deadline: float) -> str | None:
        if response.status_code >= 400:
            return f"image {url!r} is broken: the server answered {response.status_code}"
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and not kind.startswith("image/"):
            return f"image {url!r} is not an image (the server sent {kind})"
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self._too_big(url)
        size = 0
        for chunk in response.iter_bytes(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                return self._too_big(url)
            if time.monotonic() > deadline:
                return self._slow(url)
        return None

    def _slow(self, url: str) -> str:
        return f"image {url!r} did not answer within {self.timeout:g} s"

    def _too_big(self, url: str) -> str:
        return (
            f"image {url!r} is over {self.max_bytes / 1_000_000:g} MB; "
            "large images load slowly and some clients leave them out"
        )


@dataclass
class PreflightReport:
    problems: list[str]  # any of these blocks a send
    warnings: list[str]  # worth a look, never blocking

    @property
    def ok(self) -> bool:
        return not self.problems


LinkCheck = Callable[[list[str]], list[str]]


def inspect(
    rendered: RenderedEmail, *, images: ImageCheck | None = None, links: LinkCheck | None = None
) -> PreflightReport:
    """Every problem and warning for one rendered email; ``images`` also fetches each image.

    ``links`` is given the email's links and returns a warning per dead or
    moved one (``resources.links.warnings_for``: what the last link check found).
    """
    scan = _scan(rendered.html)
    problems = [p for p in (_size_problem(rendered), _subject_problem(rendered.subject)) if p]
    problems += _link_checks(scan) + _footer_checks(scan, rendered) + _structure_checks(scan)
    warnings = []
    if len(rendered.subject.strip()) > SUBJECT_WARN:
        warnings.append(f"subject is over {SUBJECT_WARN} characters; inboxes will cut it off")
    if images is not None:
        warnings += images.warnings(src for src, _alt in scan.images)
    if links is not None:
        warnings += links([href for href, _text in scan.links])
    return PreflightReport(list(dict.fromkeys(problems)), warnings)


def preflight(rendered: RenderedEmail) -> list[str]:
    """The blocking problems (empty list: good to send)."""
    return inspect(rendered).problems


def check_or_raise(rendered: RenderedEmail) -> list[str]:
    """Raise ``PreflightError`` listing every problem; return the warnings otherwise."""
    report = inspect(rendered)
    if report.problems:
        raise PreflightError(report.problems)
    return report.warnings
