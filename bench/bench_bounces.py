"""Bounce handling: mails parsed per second, and mails stored and applied per second.

    python -m bench.bench_bounces [--rounds 20] [--mails 2000] [--no-postgres]

1. **parse**: every file of the test corpus (tests/data/bounces: real DSNs,
   non-standard bounces read by flufl.bounce, ARF reports, auto-replies,
   unparsable mail), parsed ``--rounds`` times in one process; by reader.
2. **VERP**: the cost of one signed envelope sender (paid per recipient at send time).
3. **store + apply**: ``--mails`` DSNs for distinct ledger rows of a campaign
   (each a VERP-addressed hard bounce: parse, look up, insert the inbound row,
   the event, the ledger update and the suppression, one transaction per mail),
   on SQLite and PostgreSQL.
4. **over SMTP**: the same through ``bounces serve`` (aiosmtpd) from one
   smtplib connection: what an MX sees, storage before every 250 included.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.bounces.apply import BounceProcessor
from newsletter.bounces.parse import parse
from newsletter.bounces.receiver import BounceServer
from newsletter.bounces.verp import Verp
from newsletter.config import Settings
from newsletter.db import Database, connect
from newsletter.models import Campaign, Delivery, Issue, Subscriber
from newsletter.sending import campaigns
from newsletter.subscribers.addresses import address_hash
from newsletter.testing.bounce_mail import dsn

from . import dataset
from .dataset import PG_URL, postgres_available

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "bounces"


def _corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.glob("*/*")) if p.suffix in (".eml", ".txt")]


def bench_parse(rounds: int) -> dict[str, Any]:
    verp = Verp("corpus-secret-key", "bounces.example.org", extra=("fbl",))
    mails = _corpus()
    per_reader: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in mails:
            t0 = time.perf_counter()
            parsed = parse(raw, verp=verp)
            reader = parsed.how.split(".")[0] if parsed.how else parsed.kind.value
            per_reader[reader].append(time.perf_counter() - t0)
        totals.append(time.perf_counter() - start)
    kinds = Counter(parse(raw, verp=verp).kind.value for raw in mails)
    return {
        "mails": len(mails),
        "kinds": dict(kinds),
        "mails_per_second": [len(mails) / t for t in totals],
        "per_reader_ms": {k: statistics.median(v) * 1000 for k, v in sorted(per_reader.items())},
    }


def bench_verp(count: int = 200_000) -> float:
    verp = Verp("a-secret", "bounces.example.org")
    start = time.perf_counter()
    for i in range(count):
        verp.address(str(i))
    return (time.perf_counter() - start) / count * 1e6


class _NoChecks:
    """A synthetic campaign: no preflight, no topics."""

    def topic_universe(self, issue_id: int) -> list[str]:
        return []

    def preflight(self, issue_id: int) -> None:
        return None


def _campaign(db: Database, recipients: int) -> list[tuple[int, str]]:
    """A sent campaign of ``recipients`` synthetic subscribers (ledger rows accepted)."""
    now = datetime.now(UTC)
    with db.session() as session:
        session.add(Issue(number=42, slug="issue-42", title="Issue 42", issue_date=date(2018, 4, 1),
                          subject="Issue 42", preheader="", intro_md="", status="ready"))  # fmt: skip
        people = [f"reader{i}@example.org" for i in range(recipients)]
        session.execute(sa.insert(Subscriber), [
            {"email": e, "email_hash": address_hash(e), "status": "confirmed", "created_at": now,
             "soft_bounces": 0} for e in people
        ])  # fmt: skip
        session.flush()
        cid = campaigns.create_campaign(42, session=session).id
    with db.session() as session:
        campaigns.start_campaign(cid, session=session, checks=_NoChecks(), batch_size=1000, now=now)
        session.execute(sa.update(Delivery).values(status="accepted"))
        session.execute(sa.update(Campaign).values(status="sent"))  # not sending: no guard pause
        rows = session.execute(
            sa.select(Delivery.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id)
        ).all()
    return [(int(i), str(e)) for i, e in rows]


def _dsns(settings: Settings, rows: list[tuple[int, str]]) -> list[tuple[str, bytes]]:
    verp = Verp.from_settings(settings)
    return [
        (verp.address(str(i)), dsn(verp.address(str(i)), email, nonce=str(i))) for i, email in rows
    ]


def _with_db(backend: str, work: Callable[[Database, Settings], float]) -> float:
    with dataset.database(backend) as target:
        settings = target.settings(bounce_domain="bounces.example.org")
        db = connect(settings)
        try:
            return work(db, settings)
        finally:
            db.dispose()


def bench_apply(backend: str, mails: int) -> float:
    def work(db: Database, settings: Settings) -> float:
        bounces = _dsns(settings, _campaign(db, mails))
        processor = BounceProcessor(db, settings)
        start = time.perf_counter()
        for to, raw in bounces:
            assert processor.process(raw, source="bench", envelope_to=[to]).applied == 1
        return mails / (time.perf_counter() - start)

    return _with_db(backend, work)


def bench_smtp(backend: str, mails: int) -> float:
    def work(db: Database, settings: Settings) -> float:
        bounces = _dsns(settings, _campaign(db, mails))
        server = BounceServer(BounceProcessor(db, settings), host="127.0.0.1", port=0)
        server.start()
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as client:
                start = time.perf_counter()
                for to, raw in bounces:
                    client.sendmail("", [to], raw)
                elapsed = time.perf_counter() - start
        finally:
            server.stop()
        return mails / elapsed

    return _with_db(backend, work)


def _range(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    parsed = bench_parse(args.rounds)
    print(f"parse: {parsed['mails']} corpus mails x {args.rounds} rounds, kinds {parsed['kinds']}")
    print(f"  mails parsed per second (one core): {_range(parsed['mails_per_second'])}")
    for reader, ms in parsed["per_reader_ms"].items():
        print(f"  median per mail, {reader}: {ms:.2f} ms")
    print(f"VERP address per recipient: {bench_verp():.1f} µs")
    backends = ["sqlite"]
    if not args.no_postgres and postgres_available(PG_URL):
        backends.append("postgresql")
    for backend in backends:
        applied = [bench_apply(backend, args.mails) for _ in range(args.repeat)]
        print(f"store + apply, {backend}, {args.mails} hard bounces: {_range(applied)} mails/s")
        smtp = [bench_smtp(backend, args.mails) for _ in range(args.repeat)]
        print(f"over SMTP (bounces serve), {backend}: {_range(smtp)} mails/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
