"""Storing each issue's links once, and finding a token's URL even with the database down.

``ensure_links`` runs when a campaign's message is first prepared: it keeps
the positions already stored (mail already sent carries them) and appends
any link the issue did not have.  ``LinkCache`` is the web app's side: a map
from (issue, position) to URL, filled from the database and written to a
snapshot file under ``var/tracking`` so that a restarted web process still
redirects while the database is unreachable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.db import Database
from newsletter.models.base import utcnow
from newsletter.models.sending import Campaign
from newsletter.models.tracking import IssueLink
from newsletter.tracking.links import LinkKey, LinkSpec

log = logging.getLogger(__name__)
SNAPSHOT = "links.json"


def stored_positions(issue_id: int, *, session: Session) -> dict[LinkKey, int]:
    rows = session.execute(
        select(IssueLink.section, IssueLink.url, IssueLink.occurrence, IssueLink.position).where(
            IssueLink.issue_id == issue_id
        )
    )
    return {
        LinkKey(section, url, occurrence): position for section, url, occurrence, position in rows
    }


def ensure_links(
    issue_id: int, specs: Sequence[LinkSpec], *, session: Session
) -> dict[LinkKey, int]:
    """Each link's stored position, storing the ones not seen before; idempotent, race-safe.

    Two workers preparing the same issue at once both try the same rows; the
    unique (issue, position) key lets one win and the other re-reads.
    """
    known = stored_positions(issue_id, session=session)
    missing = [spec for spec in specs if spec.key not in known]
    if not missing:
        return known
    start = max(known.values(), default=0)
    rows = [
        {
            "issue_id": issue_id,
            "position": start + n,
            "section": spec.key.section,
            "section_heading": spec.section_heading,
            "url": spec.key.url,
            "occurrence": spec.key.occurrence,
            "resource_id": spec.resource_id,
            "created_at": utcnow(),
        }
        for n, spec in enumerate(missing, start=1)
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(IssueLink).on_conflict_do_nothing(), rows)
    session.flush()
    found = stored_positions(issue_id, session=session)
    if any(spec.key not in found for spec in specs):  # lost a race with different content
        return ensure_links(issue_id, specs, session=session)
    return found


class LinkCache:
    """(issue, position) -> URL for the redirect: memory, then the database, then the snapshot."""

    def __init__(self, db: Database, folder: Path, *, keep_days: int) -> None:
        self.db, self.folder, self.keep_days = db, folder, keep_days
        self._urls: dict[tuple[int, int], str] = {}
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()  # one refresh (and snapshot write) at a time
        self._load_snapshot()

    def cached(self, issue_id: int, position: int) -> str | None:
        """The URL if memory has it (no database: safe on an event loop)."""
        return self._urls.get((issue_id, position))

    def url(self, issue_id: int, position: int) -> str | None:
        """The stored URL; ``None`` if the issue has no such link (or nobody can say)."""
        found = self._urls.get((issue_id, position))
        if found is not None:
            return found
        try:
            with self.db.session() as session:
                rows = session.execute(
                    select(IssueLink.position, IssueLink.url).where(IssueLink.issue_id == issue_id)
                ).all()
        except SQLAlchemyError as exc:
            log.warning("link lookup failed (%s); issue %s is not in the cache", exc, issue_id)
            return None
        self._add((issue_id, pos, url) for pos, url in rows)
        return self._urls.get((issue_id, position))

    def refresh(self, *, now: datetime) -> None:
        """Load the links of every campaign of the retention period, and save the snapshot."""
        with self._refreshing:
            self._refresh(now)

    def _refresh(self, now: datetime) -> None:
        since = now - timedelta(days=self.keep_days)
        with self.db.session() as session:
            recent = select(Campaign.issue_id).where(
                Campaign.started_at.is_not(None), Campaign.started_at >= since
            )
            rows = session.execute(
                select(IssueLink.issue_id, IssueLink.position, IssueLink.url).where(
                    IssueLink.issue_id.in_(recent)
                )
            ).all()
        if self._add((i, p, u) for i, p, u in rows) or not (self.folder / SNAPSHOT).exists():
            self._save_snapshot()

    def _add(self, rows: Iterable[tuple[int, int, str]]) -> bool:
        with self._lock:
            before = len(self._urls)
            for issue_id, position, url in rows:
                self._urls[(issue_id, position)] = url
            return len(self._urls) != before

    def _load_snapshot(self) -> None:
        path = self.folder / SNAPSHOT
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._add((int(i), int(p), str(u)) for i, p, u in data)
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable link snapshot %s: %s", path, exc)

    def _save_snapshot(self) -> None:
        with self._lock:
            data = [[i, p, u] for (i, p), u in self._urls.items()]
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{SNAPSHOT}.{os.getpid()}"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.folder / SNAPSHOT)
