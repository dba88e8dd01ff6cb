"""Webhook ingest: realistic SendGrid event posts for a sent campaign, ingested and timed.

Each recipient of the campaign gets the events SendGrid would send (processed,
delivered or a deferral then delivered, opens, clicks, the odd bounce, block,
drop, spam report and unsubscribe), about 1 % of them replayed as SendGrid's
at-least-once delivery does, in posts of 1000 events.  Two measurements, each
in a fresh process:

* ``direct``: ``parse_events`` + ``ingest`` + commit per post, the work behind
  ``POST /webhooks/sendgrid`` minus HTTP and the signature;
* ``http``: the real endpoint under uvicorn, every post signed (ECDSA P-256)
  and verified, sent over one keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import random
import resource
import socket
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .dataset import Target

POST_SIZE = 1000


@dataclass
class IngestRun:
    events: int
    posts: int
    seconds: float
    cpu_seconds: float
    stored: int
    duplicates: int
    suppressed: int
    statements: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def ledger(target: Target, campaign_id: int, limit: int) -> list[tuple[int, str]]:
    """(ledger id, address) of the campaign's first ``limit`` recipients."""
    engine = sa.create_engine(
        target.url,
        connect_args={"options": f"-csearch_path={target.schema}"} if target.schema else {},
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT d.id, s.email FROM deliveries d JOIN subscribers s"
                    " ON s.id = d.subscriber_id WHERE d.campaign_id = :cid ORDER BY d.id LIMIT :n"
                ),
                {"cid": campaign_id, "n": limit},
            ).all()
    finally:
        engine.dispose()
    return [(int(i), str(e)) for i, e in rows]


def events_for(
    recipients: list[tuple[int, str]], campaign_id: int, *, seed: int = 7
) -> list[dict[str, Any]]:
    """The events SendGrid would post for these recipients, in roughly the order it would."""
    rng = random.Random(seed)
    start = int(time.time()) - 3600
    out: list[dict[str, Any]] = []

    def add(kind: str, ledger_id: int, email: str, at: int, **extra: Any) -> None:
        out.append(
            {
                "email": email,
                "timestamp": at,
                "smtp-id": f"<{ledger_id}.{campaign_id}@example.org>",
                "event": kind,
                "category": ["newsletter"],
                "sg_event_id": f"{kind[:2]}-{ledger_id}-{len(out)}-{rng.getrandbits(40):x}",
                "sg_message_id": f"m{ledger_id // 1000}.filterdrecv-{ledger_id}",
                "ledger_id": str(ledger_id),
                "campaign_id": str(campaign_id),
                **extra,
            }
        )

    for ledger_id, email in recipients:
        at = start + rng.randint(0, 60)
        add("processed", ledger_id, email, at)
        fate = rng.random()
        if fate < 0.005:
            add("dropped", ledger_id, email, at + 1, reason="Bounced Address")
            continue
        if fate < 0.015:
            add("bounce", ledger_id, email, at + 5, type="bounce", status="5.1.1",
                reason="550 5.1.1 The email account that you tried to reach does not exist")  # fmt: skip
            continue
        if fate < 0.02:
            add("bounce", ledger_id, email, at + 5, type="blocked", status="4.7.1",
                reason="421 4.7.1 Try again later")  # fmt: skip
            continue
        if fate < 0.04:
            add("deferred", ledger_id, email, at + 3, response="451 4.3.0 greylisted", attempt="1")
        add("delivered", ledger_id, email, at + 8, response="250 2.0.0 OK", ip="127.0.0.1", tls=1)
        if rng.random() < 0.25:
            opened = at + rng.randint(60, 3000)
            for n in range(rng.choice((1, 1, 1, 2, 3))):
                add(
                    "open",
                    ledger_id,
                    email,
                    opened + n * 90,
                    useragent="Mozilla/5.0",
                    ip="10.0.0.1",
                )
            if rng.random() < 0.16:
                add(
                    "click",
                    ledger_id,
                    email,
                    opened + 30,
                    url="https://knowledgeworks.org/resources/",
                )
            if rng.random() < 0.004:
                add("spamreport", ledger_id, email, opened + 40)
            elif rng.random() < 0.008:
                add("unsubscribe", ledger_id, email, opened + 40)
    replays = rng.sample(out, k=len(out) // 100)  # at-least-once: ~1 % arrive twice
    out.extend(replays)
    out.sort(key=lambda e: (e["timestamp"], e["sg_event_id"]))
    return out


def posts(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps(events[i : i + POST_SIZE]).encode() for i in range(0, len(events), POST_SIZE)
    ]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ingest_child(target: Target, bodies: list[bytes], results: Any) -> None:
    from sqlalchemy import event

    from newsletter.db import connect
    from newsletter.models.base import utcnow
    from newsletter.tracking.events import ingest, parse_events

    db = connect(target.settings())
    statements = [0]

    def count(*_args: Any) -> None:
        statements[0] += 1

    event.listen(db.engine, "before_cursor_execute", count)
    totals = {"stored": 0, "duplicates": 0, "suppressed": 0, "events": 0}
    cpu0 = _cpu()
    start = time.monotonic()
    for body in bodies:
        events, _ignored = parse_events(body)
        with db.session() as session:
            report = ingest(events, session=session, now=utcnow())
        totals["events"] += report.received
        totals["stored"] += report.stored
        totals["duplicates"] += report.duplicates
        totals["suppressed"] += report.suppressed
    seconds = time.monotonic() - start
    db.dispose()
    results.put({**totals, "seconds": seconds, "cpu": _cpu() - cpu0, "statements": statements[0]})


def ingest_direct(target: Target, bodies: list[bytes]) -> IngestRun:
    """``parse_events`` + ``ingest`` + commit per post, in a fresh process."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_ingest_child, args=(target, bodies, results), daemon=True)
    proc.start()
    out = results.get(timeout=3600)
    proc.join(timeout=30)
    return IngestRun(
        events=out["events"],
        posts=len(bodies),
        seconds=out["seconds"],
        cpu_seconds=out["cpu"],
        stored=out["stored"],
        duplicates=out["duplicates"],
        suppressed=out["suppressed"],
        statements=out["statements"],
    )


# --- over HTTP --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(target: Target, public_key: str, port: int) -> None:
    import uvicorn

    from newsletter.db import connect
    from newsletter.transports import MemoryMessenger
    from newsletter.web import create_app

    settings = target.settings(sendgrid_webhook_public_key=public_key)
    db = connect(settings)
    app = create_app(settings, db, messenger=MemoryMessenger())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def ingest_http(target: Target, bodies: list[bytes]) -> IngestRun:
    """Signed posts to ``/webhooks/sendgrid`` served by uvicorn in another process."""
    from newsletter.testing.webhook_signer import Signer

    signer = Signer.new()
    port = _free_port()
    ctx = mp.get_context("spawn")
    server = ctx.Process(target=_serve, args=(target, signer.public_b64, port), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not server.is_alive():
                    raise RuntimeError("the webhook server did not start") from None
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        totals = {"stored": 0, "duplicates": 0, "suppressed": 0, "received": 0}
        start = time.monotonic()
        for body in bodies:
            conn.request("POST", "/webhooks/sendgrid", body=body, headers=signer.headers(body))
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}: {answer}")
            for key in totals:
                totals[key] += int(answer[key])
        seconds = time.monotonic() - start
        conn.close()
    finally:
        server.terminate()
        server.join(timeout=10)
    return IngestRun(
        events=totals["received"],
        posts=len(bodies),
        seconds=seconds,
        cpu_seconds=0.0,
        stored=totals["stored"],
        duplicates=totals["duplicates"],
        suppressed=totals["suppressed"],
        statements=0,
    )
