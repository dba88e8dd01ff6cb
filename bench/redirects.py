"""Tracked-link redirects per second with wrk, against the running app, beside a bare route.

    python -m bench.redirects [--backend postgresql|sqlite] [--duration 10]
                              [--connections 32] [--threads 2] [--processes 2] [--json]

Sends Issue 42 to ``--recipients`` subscribers through the real preparer
(outbox), reads every tracked link out of the mail, starts the real
``newsletter serve`` (``--processes`` web processes, no send worker) and runs
two bounded wrk scenarios against it, each stopping by itself after
``--duration`` seconds:

- ``bare``: ``GET /healthz``, the same app and middleware answering a constant;
- ``redirect``: ``GET /r/{token}`` over every recipient's links: token check,
  link cache, one spool write, a 302.

It then waits, with the server still running, for the spool to drain and
checks that every answered redirect became exactly one stored event (and
how long after the last round the drain had caught up).  Loopback only.  The
figures go to BENCHMARKS.md ("Redirects").
"""

from __future__ import annotations

import argparse
import email
import json
import re
import tempfile
import time
from email import policy
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.load_subscribe import Scenario, database, run_wrk, server_env, serving

LUA_BARE = """
function init(args) statuses = {} end
function request()
  return wrk.format("GET", "/healthz", {["User-Agent"] = "Mozilla/5.0 (X11) Firefox/128.0"})
end
"""
LUA_REDIRECT = """
function init(args)
  statuses = {}
  paths = {}
  for line in io.lines(args[1]) do table.insert(paths, line) end
  counter = tid * 7919
end
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1],
    {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"})
end
"""
BASE = "https://news.example.org"


def prepare(env: dict[str, str], workdir: Path, recipients: int) -> list[str]:
    """Issue 42 sent to ``recipients`` readers through the outbox: their tracked link paths."""
    import os

    from newsletter.config import load_settings
    from newsletter.db import connect
    from newsletter.issues.source import load_source
    from newsletter.issues.store import import_source
    from newsletter.resources import library
    from newsletter.sending import campaigns, service
    from tests.sending_helpers import add_subscribers

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = load_settings()
        db = connect(settings)
        repo = Path(__file__).resolve().parent.parent
        records, _ = library.parse_files(
            sorted((repo / "newsletter/sample_data/library").glob("*"))
        )
        with db.session() as session:
            from newsletter.config import classify_topics

            library.import_records(records, session=session, topics=classify_topics(settings))
            import_source(load_source(repo / "issues" / "042-2018-04.yaml"), session=session)
            add_subscribers(session, recipients, prefix="reader")
            cid = campaigns.create_campaign(42, session=session).id
        service.start(db, settings, cid)
        service.drain(db, settings, cid)
        db.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    paths: list[str] = []
    for eml in sorted((workdir / "outbox").glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        body = message.get_body(preferencelist=("html",))
        assert body is not None
        paths += re.findall(rf'href="{re.escape(BASE)}(/r/[^"]+)"', body.get_content())
    return paths


def stored_events(url: str, schema: str | None) -> int:
    engine = sa.create_engine(
        url, connect_args={"options": f"-csearch_path={schema}"} if schema else {}
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM engagement_events")).scalar_one())
    finally:
        engine.dispose()


def run(backend: str, *, duration: float, connections: int, threads: int, processes: int,
        recipients: int, rounds: int = 3) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-redirects-") as tmp:
        workdir = Path(tmp)
        with database(backend, workdir) as (url, schema):
            env = server_env(url, schema, workdir)
            env["NEWSLETTER_BASE_URL"] = BASE
            paths = prepare(env, workdir, recipients)
            (workdir / "paths.txt").write_text("\n".join(paths) + "\n")
            options: dict[str, Any] = {"workdir": workdir, "duration": duration,
                                       "connections": connections, "threads": threads}  # fmt: skip
            extra = ["--no-worker", "--processes", str(processes)]
            bares: list[Scenario] = []
            redirects: list[Scenario] = []
            with serving(env, workdir, extra) as served:
                for _ in range(rounds):  # alternated, so a busy moment hits both alike
                    bares.append(run_wrk("bare", served, LUA_BARE, [], **options))
                    redirects.append(run_wrk(
                        "redirect", served, LUA_REDIRECT, [str(workdir / "paths.txt")],
                        **options,
                    ))  # fmt: skip
                answered = sum(r.statuses.get("302", 0) for r in redirects)
                stopped = time.monotonic()  # counted while serving: a shutdown drains all
                while stored_events(url, schema) < answered and time.monotonic() < stopped + 120:
                    time.sleep(0.5)
                caught_up = round(time.monotonic() - stopped, 1)
                stored = stored_events(url, schema)
    bare, redirect = _median(bares), _median(redirects)
    return {
        "backend": backend, "processes": processes, "connections": connections,
        "links": len(paths), "rounds": rounds, "bare": bare.__dict__,
        "redirect": redirect.__dict__,
        "bare_rps": [b.rps for b in bares], "redirect_rps": [r.rps for r in redirects],
        "ratio": round(redirect.rps / bare.rps, 3) if bare.rps else 0.0,
        "answered": answered, "stored": stored, "caught_up_s": caught_up,
        # wrk counts the answers it read; requests in flight when it stopped were answered
        # (and stored) too, at most one per connection and round.
        "stored_once": answered <= stored <= answered + connections * rounds,
    }  # fmt: skip


def _median(runs: list[Scenario]) -> Scenario:
    return sorted(runs, key=lambda s: s.rps)[len(runs) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--recipients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.backend, duration=args.duration, connections=args.connections,
                 threads=args.threads, processes=args.processes, recipients=args.recipients,
                 rounds=args.rounds)  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return 0
    for name in ("bare", "redirect"):
        s = result[name]
        print(f"{name:9} {s['rps']:>9,.0f}/s  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  "
              f"statuses {s['statuses']}  socket errors {s['socket_errors']}")  # fmt: skip
    print(f"rounds: bare {result['bare_rps']}, redirect {result['redirect_rps']}")
    print(
        f"redirect/bare {result['ratio']:.0%} (medians); answered {result['answered']}, "
        f"stored {result['stored']} while serving, {result['caught_up_s']} s after the last "
        f"round (every answered redirect stored, once: {result['stored_once']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
