"""Fetching pages for the library (sources and link checks): SSRF-safe, bounded, polite.

Every hop of a request (redirects are followed here, one by one, not by
httpx) goes through the same guard as outgoing webhooks: the host's every
address must be public unless ``fetch_allow_private_addresses``, and the
connection goes to the address that was checked (``registry.Target``), so a
redirect or a DNS answer that changes cannot aim us at the loopback interface
or a cloud metadata service.  Plain ``http://`` is allowed: many feeds use it.

Each request has a timeout for the whole answer (a server trickling bytes
counts as no answer), a size limit (counted after decompression, so a gzip
bomb is refused too) and a User-Agent that says who we are.  Failures raise
``FetchError`` with one line saying what happened.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from newsletter.automation.webhooks.registry import Resolver, Target
from newsletter.config import Settings
from newsletter.errors import FetchError

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10
_CHUNK = 64 * 1024


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host resolves to (a literal address resolves to itself, offline)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"host {host} does not resolve ({exc})", reason="network") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an http(s) URL, or a one-line ``FetchError``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"{url!r} is not a URL ({exc})", reason="blocked") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{url!r} must start with http:// or https://", reason="blocked")
    if not parts.hostname:
        raise FetchError(f"{url!r} has no host", reason="blocked")
    if parts.username or parts.password:
        raise FetchError(f"{url!r} must not carry a user name or password", reason="blocked")
    if any(c.isspace() or ord(c) < 32 for c in url.strip()):
        raise FetchError(f"{url!r} contains spaces or control characters", reason="blocked")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def safe_target(url: str, *, allow_private: bool, resolve: Resolver) -> Target:
    """Where to connect for ``url``: a checked address, or ``FetchError`` (reason "blocked")."""
    scheme, host, port, path = check_url(url)
    addresses = resolve(host, port)
    if not addresses:
        raise FetchError(f"host {host} does not resolve", reason="network")
    if not allow_private:
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise FetchError(
                f"host {host} resolves to a private or loopback address ({private[0]}); "
                "set fetch_allow_private_addresses to allow it",
                reason="blocked",
            )
    return Target(scheme, host, port, addresses[0], path)


@dataclass(frozen=True, slots=True)
class Answer:
    """The final answer after redirects (body empty for a probe, and for a 304)."""

    url: str  # where the redirects ended
    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    hops: tuple[str, ...] = field(default=())  # the URLs redirected from, in order

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class Fetcher:
    """GET with conditional headers, and the HEAD-then-GET probe of the link check.

    One per poll or check run; safe to share across threads (one httpx client).
    """

    def __init__(self, settings: Settings, *, resolve: Resolver = system_resolver) -> None:
        self.timeout = settings.fetch_timeout_seconds
        self.max_bytes = settings.fetch_max_bytes
        self.allow_private = settings.fetch_allow_private_addresses
        self.user_agent = settings.fetch_user_agent
        self.resolve = resolve
        self._client = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, url: str, *, etag: str | None = None, modified: str | None = None) -> Answer:
        """The page's body (``status`` 304 and no body when the validators still match)."""
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml, "
                             "text/xml, text/html;q=0.9, text/plain;q=0.8, */*;q=0.5"}  # fmt: skip
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        return self._follow("GET", url, headers, read=True)

    def probe(self, url: str) -> Answer:
        """Where the link ends and with what status: HEAD, else GET on 405/501 (body unread)."""
        answer = self._follow("HEAD", url, {}, read=False)
        if answer.status in (405, 501):
            answer = self._follow("GET", url, {}, read=False)
        return answer

    def _follow(self, method: str, url: str, headers: dict[str, str], *, read: bool) -> Answer:
        deadline = time.monotonic() + self.timeout
        seen: list[str] = []
        current = url
        while True:
            status, got, body = self._once(method, current, headers, read, deadline)
            location = got.get("location")
            if status not in REDIRECTS or not location:
                return Answer(current, status, got, body, tuple(seen))
            seen.append(current)
            current = urljoin(current, location.strip())
            if current in seen:
                raise FetchError(f"redirect loop at {current}", reason="loop", where=url)
            if len(seen) > MAX_REDIRECTS:
                raise FetchError(f"more than {MAX_REDIRECTS} redirects", reason="loop", where=url)
            if status == 303 and method != "HEAD":
                method = "GET"

    def _once(
        self, method: str, url: str, headers: dict[str, str], read: bool, deadline: float
    ) -> tuple[int, dict[str, str], bytes]:
        target = safe_target(url, allow_private=self.allow_private, resolve=self.resolve)
        sent = {**headers, "Host": target.host_header, "User-Agent": self.user_agent}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            with self._client.stream(
                method, target.url, headers=sent, extensions=extensions
            ) as response:
                got = {k.lower(): v for k, v in response.headers.items()}
                wanted = read and response.status_code < 300
                body = self._read(response, deadline, url) if wanted else b""
                return response.status_code, got, body
        except httpx.TimeoutException:
            raise self._slow(url) from None
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise FetchError(f"cannot fetch: {reason[:200]}", reason="network", where=url) from None

    def _read(self, response: httpx.Response, deadline: float, url: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_big(url)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_big(url)
            if time.monotonic() > deadline:
                raise self._slow(url)
            chunks.append(chunk)
        return b"".join(chunks)

    def _slow(self, url: str) -> FetchError:
        return FetchError(f"no answer within {self.timeout:g} s", reason="timeout", where=url)

    def _too_big(self, url: str) -> FetchError:
        return FetchError(
            f"the answer is larger than {self.max_bytes:,} bytes (fetch_max_bytes)",
            reason="too_big", where=url,
        )  # fmt: skip
