"""Load test of the public sign-up and one-click unsubscribe endpoints with wrk.

    python -m bench.load_subscribe [--backend sqlite|postgresql|both] [--duration 10]
                                   [--connections 16] [--threads 2] [--quick] [--json]

For each backend it starts the real ``newsletter serve`` on 127.0.0.1 (a free
port, the outbox transport writing every confirmation email to disk), seeds
confirmed subscribers for the one-click links, and runs three bounded wrk
scenarios against it, each stopping by itself after ``--duration`` seconds:

- ``subscribe``: ``POST /api/subscribe`` with a new address per request from a
  new client address per request (``X-Forwarded-For``, which ``serve`` trusts
  from 127.0.0.1 only: the deployment behind a proxy), so the per-IP limit
  does not turn the run into a benchmark of 429s;
- ``one-click``: RFC 8058 ``POST /u/<token>`` with ``List-Unsubscribe=One-Click``
  over the seeded subscribers' tokens (the first hit unsubscribes, later hits
  are idempotent);
- ``victim flood``: sign-ups for one address from ever-changing client
  addresses; the address must receive at most one confirmation email per
  window (counted in the outbox afterwards).

Loopback only: the script refuses any other host.  Results go to stdout as a
table (or JSON with ``--json``); ``BENCHMARKS.md`` "## Load" holds a run.
Needs ``wrk`` (Debian: ``apt-get install wrk``; ``make system-deps``).
"""

from __future__ import annotations

import argparse
import email
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from email import policy
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa

HOST = "127.0.0.1"
VICTIM = "victim@example.org"
PG_URL = os.environ.get(
    "NEWSLETTER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET = "load-test-secret-not-the-default"

# Shared by every scenario: statuses per thread, a JSON summary from the main state.
LUA_COMMON = r"""
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      merged[tostring(code)] = (merged[tostring(code)] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d,'
    .. ' "max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d,'
    .. ' "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout,
    table.concat(parts, ", ")))
end
"""

LUA_SUBSCRIBE = r"""
function init(args)
  statuses = {}
  counter = 0
  run = args[1] or "r"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"email": "load-%s-%d-%d@example.org", "name": "Load %d", "topics": []}',
    run, tid, counter, counter)
  local ip = string.format("10.%d.%d.%d", tid % 250, math.floor(counter / 250) % 250,
                           counter % 250)
  return wrk.format("POST", "/api/subscribe",
    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip}, body)
end
"""

LUA_VICTIM = r"""
function init(args)
  statuses = {}
  counter = 0
  victim = args[1]
end

function request()
  counter = counter + 1
  local ip = string.format("172.16.%d.%d", (tid * 7 + math.floor(counter / 250)) % 250,
                           counter % 250)
  return wrk.format("POST", "/api/subscribe",
    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip},
    string.format('{"email": "%s"}', victim))
end
"""

LUA_ONE_CLICK = r"""
function init(args)
  statuses = {}
  tokens = {}
  for line in io.lines(args[1]) do
    table.insert(tokens, line)
  end
  counter = tid
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/u/" .. token,
    {["Content-Type"] = "application/x-www-form-urlencoded"},
    "List-Unsubscribe=One-Click")
end
"""


class Bearer(NamedTuple):
    id: int
    email_hash: str


@dataclass
class Scenario:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: int

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code.startswith("5"))


@dataclass
class Result:
    backend: str
    connections: int
    threads: int
    duration: float
    scenarios: list[Scenario] = field(default_factory=list)
    victim_emails: int = 0
    confirmation_emails: int = 0
    seeded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, schema: str | None, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_VAR_DIR": str(workdir / "var"),
            "NEWSLETTER_OUTBOX_DIR": str(workdir / "outbox"),
            "NEWSLETTER_TRANSPORT": "outbox",
            "NEWSLETTER_SECRET_KEY": SECRET,
            "NEWSLETTER_BASE_URL": "https://news.example.org",
        }
    )
    if schema:
        env["NEWSLETTER_DATABASE_SCHEMA"] = schema
    return env


@contextmanager
def serving(env: dict[str, str], workdir: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """``newsletter serve`` (with ``extra`` options) on a free loopback port until the block ends."""
    port = free_port()
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--host", HOST, "--port", str(port), *extra],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"newsletter serve exited: {(workdir / 'serve.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{url}/api/topics", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("newsletter serve did not come up within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --------------------------------------------------------------------------- data


def seed(env: dict[str, str], count: int, token_file: Path) -> int:
    """Confirmed subscribers and one unsubscribe token per line for the one-click run."""
    from newsletter.config import load_settings
    from newsletter.db import connect
    from newsletter.models import Subscriber
    from newsletter.models.base import utcnow
    from newsletter.subscribers.tokens import Purpose, tokens_for

    overrides: dict[str, Any] = {
        "database_url": env["NEWSLETTER_DATABASE_URL"],
        "database_schema": env.get("NEWSLETTER_DATABASE_SCHEMA"),
        "var_dir": Path(env["NEWSLETTER_VAR_DIR"]),
        "secret_key": SECRET,
    }
    settings = load_settings(**overrides)
    db = connect(settings)
    try:
        now = utcnow()
        rows = []
        for i in range(count):
            address = f"reader{i}@example.org"
            rows.append(
                {
                    "email": address,
                    "email_hash": hashlib.sha256(address.encode()).hexdigest(),
                    "status": "confirmed",
                    "created_at": now,
                    "confirmed_at": now,
                    "soft_bounces": 0,
                }
            )
        with db.session() as session:
            session.execute(sa.insert(Subscriber), rows)
            seeded = session.execute(
                sa.select(Subscriber.id, Subscriber.email_hash).where(
                    Subscriber.email.like("reader%@example.org")
                )
            ).all()
        tokens = tokens_for(settings)
        token_file.write_text(
            "".join(
                tokens.make(Purpose.UNSUBSCRIBE, Bearer(int(i), str(h))) + "\n" for i, h in seeded
            )
        )
        return len(seeded)
    finally:
        db.dispose()


def confirmation_emails(outbox: Path) -> dict[str, int]:
    """Confirmation emails in the outbox, counted per recipient."""
    counts: dict[str, int] = {}
    if not outbox.is_dir():
        return counts
    for path in outbox.glob("*.eml"):
        with open(path, "rb") as fh:
            msg = email.message_from_binary_file(fh, policy=policy.default)
        to = str(msg["To"]).strip("<>").rsplit("<", 1)[-1].strip(">")
        counts[to] = counts.get(to, 0) + 1
    return counts


# --------------------------------------------------------------------------- wrk


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk, or make system-deps)")
    return found


def run_wrk(
    name: str,
    url: str,
    lua: str,
    args: list[str],
    *,
    workdir: Path,
    duration: float,
    connections: int,
    threads: int,
) -> Scenario:
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"loopback only: refusing to load {url}")
    script = workdir / f"{name.replace(' ', '_')}.lua"
    script.write_text(LUA_COMMON + lua)
    command = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    seconds = data["duration_us"] / 1e6
    return Scenario(
        name=name,
        requests=data["requests"],
        seconds=round(seconds, 2),
        rps=round(data["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(data["p50_us"] / 1000, 1),
        p90_ms=round(data["p90_us"] / 1000, 1),
        p99_ms=round(data["p99_us"] / 1000, 1),
        max_ms=round(data["max_us"] / 1000, 1),
        statuses=dict(sorted(data["statuses"].items())),
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
    )


# --------------------------------------------------------------------------- a run


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[tuple[str, str | None]]:
    """A fresh SQLite file, or a fresh schema in the PostgreSQL test database."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'var' / 'load.db'}", None
        return
    schema = f"load_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield PG_URL, schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def run(
    backend: str,
    *,
    duration: float = 10.0,
    connections: int = 16,
    threads: int = 2,
    subscribers: int = 2000,
    database_url: str | None = None,
    schema: str | None = None,
    workdir: Path | None = None,
) -> Result:
    """Seed, serve, and run the three scenarios against one backend."""
    result = Result(backend, connections, threads, duration)
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        work = workdir or Path(tmp)
        (work / "var").mkdir(parents=True, exist_ok=True)
        if database_url is None:
            with database(backend, work) as (url, made_schema):
                return _run(result, url, made_schema, work, subscribers)
        return _run(result, database_url, schema, work, subscribers)


def _run(result: Result, url: str, schema: str | None, work: Path, subscribers: int) -> Result:
    env = server_env(url, schema, work)
    tokens = work / "tokens.txt"
    result.seeded = seed(env, subscribers, tokens)
    common: dict[str, Any] = {
        "workdir": work,
        "duration": result.duration,
        "connections": result.connections,
        "threads": result.threads,
    }
    with serving(env, work) as base:
        run_id = uuid.uuid4().hex[:6]
        result.scenarios.append(run_wrk("subscribe", base, LUA_SUBSCRIBE, [run_id], **common))
        result.scenarios.append(run_wrk("one-click", base, LUA_ONE_CLICK, [str(tokens)], **common))
        flood = {**common, "duration": max(1.0, result.duration / 2)}
        result.scenarios.append(run_wrk("victim flood", base, LUA_VICTIM, [VICTIM], **flood))
        time.sleep(1.0)  # confirmation emails are sent after the response: let them land
    counts = confirmation_emails(work / "outbox")
    result.victim_emails = counts.get(VICTIM, 0)
    result.confirmation_emails = sum(counts.values())
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| backend | endpoint | requests/s | p50 ms | p99 ms | requests | statuses | 5xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for sc in res.scenarios:
            codes = ", ".join(f"{k}: {v}" for k, v in sc.statuses.items())
            lines.append(
                f"| {res.backend} | {sc.name} | {sc.rps:,.0f} | {sc.p50_ms} | {sc.p99_ms} "
                f"| {sc.requests:,} | {codes} | {sc.server_errors} |"
            )
    for res in results:
        lines.append("")
        lines.append(
            f"{res.backend}: {res.confirmation_emails} confirmation emails written; "
            f"{res.victim_emails} to the flooded address (at most 1 allowed)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="2 s per scenario (CI)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    duration = 2.0 if options.quick else options.duration
    backends = ["sqlite", "postgresql"] if options.backend == "both" else [options.backend]
    results = [
        run(
            backend,
            duration=duration,
            connections=options.connections,
            threads=options.threads,
            subscribers=options.subscribers,
        )
        for backend in backends
    ]
    if options.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(table(results))
    failed = any(sc.server_errors or sc.socket_errors for r in results for sc in r.scenarios)
    flooded = any(r.victim_emails > 1 for r in results)
    return 1 if failed or flooded else 0


if __name__ == "__main__":
    sys.exit(main())
