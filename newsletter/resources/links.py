"""Link health: is each library resource's URL still there, gone, or moved elsewhere?

Each URL is probed (``Fetcher.probe``: HEAD, GET when the server refuses HEAD
with 405/501, redirects followed one checked hop at a time, a timeout) from a
small thread pool, and the verdict is written on the resource:

- ``ok``: a 2xx at the same address (after redirects that only normalise it);
- ``moved``: a 2xx at another address, kept in ``link_final_url``;
- ``dead``: 404/410 and other 4xx, 5xx, no answer, a redirect loop.

401, 403 and 429 say "not for robots" rather than "gone", and an address we
refuse to fetch (private) says nothing about the link: those leave the status
as it was and only note why.  Preflight (``warnings_for``) warns about every
dead or moved link of an issue before it is scheduled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import FetchError
from newsletter.fetching import Fetcher
from newsletter.models import Resource
from newsletter.resources.classify import normalise_url

INCONCLUSIVE = (401, 403, 429)
WRITE_EVERY = 50


class LinkStatus(StrEnum):
    OK = "ok"
    DEAD = "dead"
    MOVED = "moved"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One URL's check: a status (None: inconclusive, keep the old one), where it ends, why."""

    url: str
    status: LinkStatus | None
    final_url: str | None = None
    detail: str = ""


def judge(url: str, fetcher: Fetcher) -> Verdict:
    """Probe one URL; never raises for the link's faults."""
    try:
        answer = fetcher.probe(url)
    except FetchError as exc:
        status = None if exc.reason == "blocked" else LinkStatus.DEAD
        return Verdict(url, status, None, exc.message[:300])
    code = answer.status
    if code in INCONCLUSIVE:
        return Verdict(url, None, None, f"HTTP {code} (the site turns robots away)")
    if code >= 400 or code < 200 or 300 <= code < 400:
        return Verdict(url, LinkStatus.DEAD, None, f"HTTP {code}")
    if answer.hops and normalise_url(answer.url) != normalise_url(url):
        hops = len(answer.hops)
        return Verdict(url, LinkStatus.MOVED, answer.url,
                       f"HTTP {code} after {hops} redirect{'s' if hops > 1 else ''}")  # fmt: skip
    return Verdict(url, LinkStatus.OK, None, f"HTTP {code}")


@dataclass
class CheckReport:
    checked: int = 0
    ok: int = 0
    dead: int = 0
    moved: int = 0
    unknown: int = 0

    def count(self, verdict: Verdict) -> None:
        self.checked += 1
        name = verdict.status.value if verdict.status is not None else "unknown"
        setattr(self, name, getattr(self, name) + 1)


def due(*, session: Session, now: datetime, older_than: timedelta | None) -> list[tuple[int, str]]:
    """(id, url) of every resource with a URL, or only those not checked since ``older_than``."""
    query = select(Resource.id, Resource.url).where(Resource.url.is_not(None))
    if older_than is not None:
        cutoff = now - older_than
        query = query.where(
            or_(Resource.link_checked_at.is_(None), Resource.link_checked_at < cutoff)
        )
    return [(rid, url) for rid, url in session.execute(query.order_by(Resource.id)) if url]


def _write(verdicts: list[tuple[int, Verdict]], *, db: Database, now: datetime) -> None:
    """Store the verdicts; ``updated_at`` is left alone (a check is not an edit)."""
    with db.session() as session:
        for resource_id, verdict in verdicts:
            values: dict[str, object] = {
                "link_checked_at": now, "link_detail": verdict.detail[:300] or None,
                "updated_at": Resource.updated_at,
            }  # fmt: skip
            if verdict.status is not None:
                values["link_status"] = verdict.status.value
                values["link_final_url"] = verdict.final_url
            session.execute(update(Resource).where(Resource.id == resource_id).values(**values))


def check_links(
    db: Database, settings: Settings, *, now: Callable[[], datetime],
    older_than: timedelta | None = None, progress: Callable[[int, int], None] | None = None,
    fetcher: Fetcher | None = None,
) -> CheckReport:  # fmt: skip
    """Check the library's links, ``link_check_concurrency`` at a time, writing as it goes."""
    with db.session() as session:
        targets = due(session=session, now=now(), older_than=older_than)
    report = CheckReport()
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings)
    pending: list[tuple[int, Verdict]] = []
    try:
        with ThreadPoolExecutor(max_workers=settings.link_check_concurrency) as pool:
            verdicts = pool.map(lambda target: judge(target[1], fetcher), targets)
            for (resource_id, _url), verdict in zip(targets, verdicts, strict=True):
                report.count(verdict)
                pending.append((resource_id, verdict))
                if len(pending) >= WRITE_EVERY:
                    _write(pending, db=db, now=now())
                    pending = []
                if progress is not None:
                    progress(report.checked, len(targets))
        if pending:
            _write(pending, db=db, now=now())
    finally:
        if own:
            fetcher.close()
    return report


def warnings_for(hrefs: Iterable[str], *, session: Session) -> list[str]:
    """One preflight warning per link of an email that the last check found dead or moved."""
    keys = {normalise_url(h): h for h in hrefs if h.lower().startswith(("http://", "https://"))}
    if not keys:
        return []
    rows = session.execute(
        select(Resource.url_key, Resource.link_status, Resource.link_final_url,
               Resource.link_detail)
        .where(Resource.url_key.in_(list(keys)),
               Resource.link_status.in_([LinkStatus.DEAD.value, LinkStatus.MOVED.value]))
    ).all()  # fmt: skip
    found = {key: (status, final, detail) for key, status, final, detail in rows}
    warnings = []
    for key, href in keys.items():
        if key not in found:
            continue
        status, final, detail = found[key]
        if status == LinkStatus.DEAD:
            warnings.append(f"link {href} is dead ({detail or 'last check failed'})")
        else:
            warnings.append(f"link {href} has moved to {final}; update the resource")
    return warnings
