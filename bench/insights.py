"""The issue-results query on a campaign of 1M recipients and 5M click events (PostgreSQL).

    python -m bench.insights [--recipients 1000000] [--events 5000000] [--repeats 5]

Seeds a fresh schema: the library and Issue 42 (its links stored by the real
preparer, ``tracked_links``), one sent campaign whose ledger is written with
``generate_series`` (recipients spread over the 8 segments of the issue's 3
topics, 2 % bounced), then ``--events`` first-party click events in
``engagement_events`` (40 % of recipients click, three links each, one event
in ten a machine's) summed into ``link_clicks`` and ``resource_clicks``
exactly as the recorder keeps them (one row per link, or resource, and
recipient, with the recipient's segment).  No ORM inserts.  Then it times
``insights.results.issue_results`` (every link and resource, overall and per
topic) ``--repeats`` times after ``VACUUM ANALYZE`` (what autovacuum does to a
sent campaign's tables), and prints the median and range.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from newsletter.db import connect
from newsletter.insights.results import issue_results
from newsletter.models import Issue, IssueLink
from newsletter.sending.service import preparer_for

from . import dataset
from .dataset import PG_URL, postgres_available

CLICKER_SHARE = 0.4
LINKS_PER_CLICKER = 3


def seed(target: dataset.Target, recipients: int, events: int) -> dict[str, Any]:
    """The campaign and its clicks; returns the campaign id and what was written."""
    dataset.prepare(target, 0)
    settings = target.settings(tracking=True)
    db = connect(settings)
    try:
        issue_id = _store_links(db, settings)
        with db.session() as session:
            topics = sorted(
                {t for s in session.get_one(Issue, issue_id).sections for t in s.topics}
            )
            links = session.scalar(select(sa.func.count()).where(IssueLink.issue_id == issue_id))
            started = time.perf_counter()
            cid = _campaign(session, issue_id, topics, recipients)
            _ledger(session, cid, recipients, len(topics))
            _events(session, cid, issue_id, recipients, events, int(links or 0))
            _sums(session, cid)
            seeded = time.perf_counter() - started
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
            counts = {
                name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in ("deliveries", "engagement_events", "link_clicks", "resource_clicks")
            }
    finally:
        db.dispose()
    return {"campaign_id": cid, "links": links, "topics": topics, "seed_seconds": seeded,
            **counts}  # fmt: skip


def _store_links(db: Any, settings: Any) -> int:
    with db.session() as session:
        issue_id = session.scalars(select(Issue.id).where(Issue.number == 42)).one()
    preparer_for(db, settings).tracked_links(issue_id)
    return int(issue_id)


def _campaign(session: Any, issue_id: int, topics: list[str], recipients: int) -> int:
    return int(session.execute(sa.text(
        "INSERT INTO campaigns (issue_id, name, status, topics, segment_topics, transport, "
        "consecutive_failures, allow_resend, total_recipients, audience, created_at, updated_at, "
        "started_at, finished_at) VALUES (:issue, 'bench', 'sent', '[]', CAST(:topics AS JSON), "
        "'smtp', 0, false, :n, 'active', now(), now(), now(), now()) RETURNING id"
    ), {"issue": issue_id, "topics": json.dumps(topics), "n": recipients}).scalar_one())  # fmt: skip


def _ledger(session: Any, cid: int, recipients: int, topics: int) -> None:
    session.execute(sa.text(
        "INSERT INTO deliveries (campaign_id, subscriber_id, email_hash, segment, status, "
        "attempts, opens, clicks, machine_opens, machine_clicks, updated_at) "
        "SELECT :cid, g, md5(g::text), ((g * 2654435761) % :segments)::text, "
        "CASE WHEN g % 50 = 0 THEN 'bounced' ELSE 'accepted' END, 1, 0, 0, 0, 0, now() "
        "FROM generate_series(1, :n) AS g"
    ), {"cid": cid, "n": recipients, "segments": 2**topics})  # fmt: skip


def _events(session: Any, cid: int, issue_id: int, recipients: int, events: int,
            links: int) -> None:  # fmt: skip
    """Each clicking recipient clicks ``LINKS_PER_CLICKER`` links, several times each."""
    base = session.execute(sa.text("SELECT min(id) FROM deliveries WHERE campaign_id = :c"),
                           {"c": cid}).scalar_one()  # fmt: skip
    clickers = int(recipients * CLICKER_SHARE)
    session.execute(sa.text(
        "INSERT INTO engagement_events (event_id, kind, delivery_id, campaign_id, link_id, "
        "occurred_at, machine, reason, user_agent, network, received_at) "
        "SELECT 'b' || e, 'click', :base + (e % :clickers) * 2, :cid, l.id, "
        "now() - (e % 86400) * interval '1 second', e % 10 = 0, "
        "CASE WHEN e % 10 = 0 THEN 'scanner' END, 'Mozilla/5.0', NULL, now() "
        "FROM generate_series(1, :events) AS e "
        "JOIN issue_links l ON l.issue_id = :issue AND l.position = "
        "1 + ((e % :clickers) * 7 + ((e / :clickers) % :per) * 5) % :links"
    ), {"base": base, "clickers": clickers, "cid": cid, "events": events, "issue": issue_id, "per": LINKS_PER_CLICKER,
        "links": links})  # fmt: skip


def _sums(session: Any, cid: int) -> None:
    """``link_clicks`` and ``resource_clicks`` as the recorder keeps them (one row per link,
    or resource, and recipient, with the recipient's segment)."""
    session.execute(sa.text(
        "INSERT INTO link_clicks (link_id, delivery_id, campaign_id, human, machine, first_at, "
        "segment) SELECT e.link_id, e.delivery_id, e.campaign_id, "
        "count(*) FILTER (WHERE NOT e.machine), count(*) FILTER (WHERE e.machine), "
        "min(e.occurred_at), min(d.segment) FROM engagement_events e "
        "JOIN deliveries d ON d.id = e.delivery_id "
        "WHERE e.campaign_id = :cid GROUP BY e.link_id, e.delivery_id, e.campaign_id"
    ), {"cid": cid})  # fmt: skip
    session.execute(sa.text(
        "INSERT INTO resource_clicks (resource_id, delivery_id, campaign_id, segment, human, "
        "machine, first_at) SELECT l.resource_id, c.delivery_id, min(c.campaign_id), "
        "min(c.segment), sum(c.human), sum(c.machine), min(c.first_at) FROM link_clicks c "
        "JOIN issue_links l ON l.id = c.link_id WHERE l.resource_id IS NOT NULL "
        "AND c.campaign_id = :cid GROUP BY l.resource_id, c.delivery_id"
    ), {"cid": cid})  # fmt: skip


def measure(target: dataset.Target, cid: int, repeats: int) -> list[float]:
    db = connect(target.settings())
    seconds = []
    try:
        for _ in range(repeats):
            with db.session() as session:
                started = time.perf_counter()
                found = issue_results(session, campaign_id=cid)
                seconds.append(time.perf_counter() - started)
        assert found.delivered > 0 and sum(r.clickers for r in found.links) > 0
    finally:
        db.dispose()
    return seconds


def explain(target: dataset.Target, cid: int) -> None:
    """Each statement ``issue_results`` runs, with its time and its plan's top lines."""
    db = connect(target.settings())
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.session() as session:
            issue_results(session, campaign_id=cid)
        sa.event.remove(db.engine, "before_cursor_execute", record)
        with db.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            for statement, params in statements:
                cursor = raw.cursor()
                try:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    plan = [row[0] for row in cursor.fetchall()]
                finally:
                    cursor.close()
                print(" ".join(statement.split())[:160])
                print("\n".join("    " + line for line in plan[:14]))
                print("    ...", plan[-1])
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="Print each statement's plan.")
    args = parser.parse_args(argv)
    if not postgres_available(PG_URL):
        raise SystemExit(f"PostgreSQL is not reachable at {PG_URL}")
    with dataset.database("postgresql") as target:
        seeded = seed(target, args.recipients, args.events)
        print(json.dumps(seeded, default=str))
        if args.explain:
            explain(target, int(seeded["campaign_id"]))
        runs = measure(target, int(seeded["campaign_id"]), args.repeats)
    print(f"issue_results: median {statistics.median(runs):.3f} s "
          f"(range {min(runs):.3f}-{max(runs):.3f}, {len(runs)} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
