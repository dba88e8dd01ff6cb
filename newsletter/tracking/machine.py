"""Telling readers from machines: prefetching mail clients, scanners, proxies and bots.

Much of what fetches a tracked link or pixel is not a person: Apple Mail
Privacy Protection loads every image when mail arrives, security gateways
(Microsoft Defender, Mimecast, Proofpoint) follow every link seconds after
delivery, image proxies prefetch, monitoring tools send ``HEAD`` requests.
Counting them as readers makes a campaign look opened by everyone and tells
an editor nothing.  Each hit is classified from what the request said and
when it came relative to the send; machine hits are kept (and reported)
apart, never thrown away.  The rules, in order:

1. ``HEAD`` request: no browser follows a link with HEAD.
2. No user agent at all.
3. An open from Apple's proxy: the bare ``Mozilla/5.0`` user agent MPP sends,
   or an address in Apple's 17.0.0.0/8.
4. An image proxy (Gmail's GoogleImageProxy, Yahoo's YahooMailProxy, ...)
   within ``scanner_window_seconds`` of the send: a prefetch.  Later, the
   proxy fetches because a reader opened the mail, and that counts.
5. A known bot user agent (``crawlerdetect``).
6. A click within ``scanner_window_seconds`` of the send: no reader is that
   fast; gateways are.
7. Three or more different links of one message within two seconds: a
   scanner walking the message.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from crawlerdetect import CrawlerDetect

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
MPP_USER_AGENT = "Mozilla/5.0"
PROXIES = ("GoogleImageProxy", "YahooMailProxy", "ggpht.com", "OutlookImageProxy")
BURST_LINKS = 3
BURST_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Hit:
    """What one request to a tracked URL said (from the spool record)."""

    kind: str  # "click" or "open"
    delivery_id: int
    position: int
    at: datetime
    user_agent: str
    head: bool = False
    apple: bool = False


def is_apple(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip) in APPLE_NETWORK
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _detector() -> CrawlerDetect:
    return CrawlerDetect()


@lru_cache(maxsize=4096)
def bot_name(user_agent: str) -> str | None:
    """The crawler a user agent names, if ``crawlerdetect`` knows it."""
    detector = _detector()
    if not detector.isCrawler(user_agent):
        return None
    return str(detector.getMatches() or "bot")[:30]


def _proxy(user_agent: str) -> bool:
    return any(name in user_agent for name in PROXIES)


def classify(hit: Hit, *, sent_at: datetime | None, window: timedelta) -> str | None:
    """Why this hit is a machine's, or ``None`` for a reader (rules 1-6; 7 is ``bursts``)."""
    early = sent_at is not None and hit.at - sent_at < window
    ua = hit.user_agent.strip()
    if hit.head:
        return "head request"
    if not ua:
        return "no user agent"
    if hit.kind == "open" and (ua == MPP_USER_AGENT or hit.apple):
        return "apple privacy protection"
    if _proxy(ua):
        return "image proxy prefetch" if early or hit.kind == "click" else None
    bot = bot_name(ua)
    if bot:
        return f"bot: {bot}"
    if hit.kind == "click" and early:
        return "scanner: clicked on arrival"
    return None


def bursts(hits: Sequence[Hit]) -> set[int]:
    """Indices of clicks that are part of a scanner's burst (rule 7) among one batch of hits."""
    by_delivery: dict[int, list[int]] = {}
    for index, hit in enumerate(hits):
        if hit.kind == "click":
            by_delivery.setdefault(hit.delivery_id, []).append(index)
    flagged: set[int] = set()
    for indices in by_delivery.values():
        ordered = sorted(indices, key=lambda i: hits[i].at)
        start = 0
        for end in range(len(ordered)):
            while (hits[ordered[end]].at - hits[ordered[start]].at).total_seconds() > BURST_SECONDS:
                start += 1
            window = ordered[start : end + 1]
            if len({hits[i].position for i in window}) >= BURST_LINKS:
                flagged.update(window)
    return flagged
