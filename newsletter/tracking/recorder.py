"""The web app's side of tracking: answer a hit without the database, drain it later.

``Recorder.click`` and ``Recorder.open`` verify the token (no database),
find the URL (memory, database, snapshot), append the hit to the spool and
return; the web route answers.  ``Drainer`` is a thread of the web process
that seals the spool every second and stores sealed files in batches, and
refreshes the link cache; if the database is down it simply tries again.
Under ``serve --processes N`` the supervisor stores every process's files and
each web process's ``Drainer`` only seals and refreshes (``stores=False``): a
file nobody seals is never stored until that process stops.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models.base import utcnow
from newsletter.tracking import engagement
from newsletter.tracking.linkstore import LinkCache
from newsletter.tracking.machine import is_apple
from newsletter.tracking.spool import DrainReport, Spool, drain
from newsletter.tracking.tokens import OPEN, Hit, LinkSigner

log = logging.getLogger(__name__)
NETWORK_CACHE = 50_000  # addresses remembered (then forgotten all at once)


def network_of(ip: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The /24 (IPv4) or /48 (IPv6) an address is in: enough to see a scanner, not a person."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@dataclass
class Recorder:
    settings: Settings
    db: Database
    signer: LinkSigner
    cache: LinkCache
    spool: Spool
    _network_key: bytes = b""
    _draining: threading.Lock = field(default_factory=threading.Lock)
    _networks: dict[str, tuple[str | None, bool]] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, db: Database) -> Recorder:
        folder = settings.tracking_dir
        keys = settings.keyring.verifying
        recorder = cls(
            settings=settings, db=db, signer=LinkSigner(keys),
            cache=LinkCache(db, folder, keep_days=settings.tracking_retention_days),
            spool=Spool(folder / "spool"),
        )  # fmt: skip
        recorder._network_key = hmac.new(keys[-1].encode(), b"network", hashlib.sha256).digest()
        return recorder

    def _network(self, ip: str | None) -> tuple[str | None, bool]:
        """A keyed hash of the client's network (never the address itself) and "is it Apple's".

        Remembered per address: a busy redirect sees the same proxies and offices
        again and again, and parsing an address costs more than the rest of a hit.
        """
        if ip is None:
            return None, False
        known = self._networks.get(ip)
        if known is None:
            net = network_of(ip)
            digest = None
            if net is not None:
                digest = hashlib.blake2b(
                    str(net).encode(), key=self._network_key, digest_size=8
                ).hexdigest()
            known = (digest, is_apple(ip))
            if len(self._networks) > NETWORK_CACHE:
                self._networks.clear()
            self._networks[ip] = known
        return known

    def _spool(self, kind: str, hit: Any, head: bool, user_agent: str, ip: str | None) -> None:
        if not self.settings.tracking:
            return  # tracking off: links still work, nothing is recorded
        network, apple = self._network(ip)
        record = {
            "id": secrets.token_hex(16), "k": kind, "d": hit.delivery_id, "i": hit.issue_id,
            "p": hit.position, "t": time.time(), "ua": user_agent[:300],
            "n": network, "a": 1 if apple else 0, "h": 1 if head else 0,
        }  # fmt: skip
        self.spool.append(record)

    def verify_click(self, token: str) -> Hit | None:
        hit = self.signer.verify(token)
        return None if hit is None or hit.position == OPEN else hit

    def click(
        self, hit: Hit, *, head: bool, user_agent: str, ip: str | None, lookup: bool = True
    ) -> str | None:
        """The URL to redirect to, the hit spooled; ``None`` if the issue has no such link.

        ``lookup=False`` answers from memory only (an event loop must not wait for
        the database); the caller then retries with ``lookup`` in a thread.
        """
        find = self.cache.url if lookup else self.cache.cached
        url = find(hit.issue_id, hit.position)
        if url is not None:
            self._spool("c", hit, head, user_agent, ip)
        return url

    def open(self, token: str, *, head: bool, user_agent: str, ip: str | None) -> None:
        """Spool an open for a genuine pixel token (the pixel is answered either way)."""
        hit = self.signer.verify(token)
        if hit is not None and hit.position == OPEN:
            self._spool("o", hit, head, user_agent, ip)

    def drain_once(self) -> DrainReport:
        """Seal the current file and store every sealed one (also at start-up and shutdown).

        One drain at a time in a process: a caller (the CLI, a test) that drains
        while the background thread is at it waits for it, then finds nothing left.
        """
        with self._draining:
            return self._drain_once()

    def _drain_once(self) -> DrainReport:
        self.spool.rotate()
        window = timedelta(seconds=self.settings.scanner_window_seconds)

        def store(records: list[dict[str, Any]]) -> None:
            with self.db.session() as session:
                engagement.store_hits(records, session=session, now=utcnow(), window=window)

        return drain(self.spool.folder, store)


class Drainer:
    """A thread draining the spool every ``interval`` seconds and refreshing the link cache."""

    def __init__(
        self, recorder: Recorder, *, interval: float = 1.0, refresh: float = 60.0,
        stores: bool = True,
    ) -> None:  # fmt: skip
        self.recorder, self.interval, self.refresh_every = recorder, interval, refresh
        self.stores = stores
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracking-drain", daemon=True)
        self._refreshed = 0.0

    def start(self) -> None:
        self._thread.start()

    def _tick(self) -> None:
        """Refresh the link cache when due, then seal and drain: each survives the other failing.

        Sealing happens even when the database is down, so a file this process
        wrote is never left locked: another process can store it if this one dies.
        """
        if time.monotonic() - self._refreshed >= self.refresh_every:
            self._attempt("link cache refresh", lambda: self.recorder.cache.refresh(now=utcnow()))
            self._refreshed = time.monotonic()
        if self.stores:
            self._attempt("tracking drain", self.recorder.drain_once)
        else:  # another process stores it: seal only (no database, microseconds)
            self._attempt("tracking seal", self.recorder.spool.rotate)

    @staticmethod
    def _attempt(what: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception as exc:  # the database is down, most likely: the spool keeps it all
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("%s postponed: %s", what, first)

    def _run(self) -> None:
        while not self.stop.is_set():
            self._tick()
            self.stop.wait(self.interval)

    def close(self) -> None:
        """Stop, then one last drain so a clean shutdown leaves nothing spooled."""
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._tick()
