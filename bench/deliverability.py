"""Deliverability benchmarks: ``python -m bench.deliverability`` (``--write`` updates BENCHMARKS.md).

* **DKIM, per message**: Issue 42 messages built by ``BatchWire`` (the SMTP and
  outbox fast path) for 1000 recipients, then the same signed with a 2048-bit
  RSA key, an Ed25519 key, and both: CPU per message in this process.
* **DKIM, SMTP campaigns**: the same whole campaigns as ``bench.run``'s SMTP path
  (real engine, SqlStore, IssuePreparer, SMTPMessenger into the raw asyncio
  sink, every recipient checked once in the sink and the ledger), without
  DKIM, with rsa-sha256, and with rsa-sha256 + ed25519-sha256, runs
  interleaved so load drift hits every variant alike; the ratio is signed to
  unsigned throughput.
* **Pacing**: a 1M-recipient audience across 50 receiving domains (Zipf-like:
  the biggest a quarter of it) in batches of 1000 through ``Pacer.admit`` and
  ``Pacer.observe`` on a clock advancing at 25,000 recipients/s: CPU per
  recipient with no limit, with limits on the ten largest domains, and the
  simulated time the campaign needs under those limits.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import dataset, machine
from .run import REPO, log, run_campaign
from .sinks import RawSmtpSink

BEGIN, END = "<!-- deliverability:begin -->", "<!-- deliverability:end -->"


# --- DKIM per message -----------------------------------------------------------------


def issue_batch(count: int, *, tracking: bool | None = None) -> Any:
    """An Issue 42 ``MessageBatch`` as the preparer makes it, without a database.

    ``tracking`` overrides the setting (its default, or ``NEWSLETTER_TRACKING``).
    """
    from newsletter.config import classify_topics, load_settings
    from newsletter.issues.assemble import ResourceFacts, build_content
    from newsletter.issues.source import load_source
    from newsletter.resources import library
    from newsletter.resources.classify import classify
    from newsletter.resources.parsers import parse_file
    from newsletter.sending.prepare import offline_preparer
    from newsletter.sending.types import Addressee, ClaimedBatch

    settings = load_settings(base_url="https://news.example.org", secret_key="bench-secret")
    if tracking is not None:
        settings = settings.model_copy(update={"tracking": tracking})
    page = REPO / "newsletter" / "sample_data" / "library" / "003_23e90bc3fab8e407.txt"
    facts = {}
    for n, record in enumerate(parse_file(page).records, start=1):
        record = classify(record, classify_topics(settings))
        slug = library.slugify(record.title)
        facts[slug] = ResourceFacts(
            id=n, slug=slug, title=record.title, url=record.url, summary=record.summary,
            type=record.type, source=record.source, authors=record.authors,
            image_url=record.image_url, image_alt=record.image_alt,
            image_credit=record.image_credit, call_to_action=record.call_to_action,
            topics=record.topics,
        )  # fmt: skip
    content = build_content(load_source(REPO / "issues" / "042-2018-04.yaml"), facts)
    preparer = offline_preparer(settings, content)
    people = tuple(
        Addressee(n, n, f"reader{n}@example.org", f"Reader {n}", f"{n:064x}") for n in range(count)
    )
    return preparer(ClaimedBatch(1, 1, 1, frozenset(), 1, people))


def dkim_per_message(count: int = 1000, repeats: int = 3) -> dict[str, Any]:
    from newsletter.deliverability import dkim
    from newsletter.transports import smtp
    from newsletter.transports.base import message_id
    from newsletter.transports.wire import BatchWire

    batch = issue_batch(count)
    rsa = dkim.DkimKey("example.org", "bench", dkim.generate("rsa"))
    ed = dkim.DkimKey("example.org", "bench-ed", dkim.generate("ed25519"))
    variants = {"unsigned": None, "rsa-sha256": [rsa], "ed25519-sha256": [ed],
                "rsa-sha256 + ed25519-sha256": [rsa, ed]}  # fmt: skip
    ids = [message_id(r.ref, batch.sender) for r in batch.recipients]
    out: dict[str, Any] = {"messages": count, "bytes": 0, "us": {}}
    for name, keys in variants.items():
        signer = dkim.Signer(keys) if keys else None
        samples = []
        for _ in range(repeats):
            wire = BatchWire(batch, smtp._render, signer)
            start = time.process_time()
            for rcpt, msg_id in zip(batch.recipients, ids, strict=True):
                data = wire.render(rcpt, msg_id)
            samples.append((time.process_time() - start) / count * 1e6)
        out["us"][name] = statistics.median(samples)
        out["bytes"] = len(data)
    return out


# --- DKIM in SMTP campaigns -------------------------------------------------------------


def dkim_campaigns(backend: str, size: int, repeats: int) -> dict[str, Any]:
    from newsletter.deliverability import dkim

    keys = Path(tempfile.mkdtemp(prefix="nl-bench-dkim-"))
    for selector, kind in (("bench", "rsa"), ("benched", "ed25519")):
        dkim.write_key(dkim.key_path(keys, "example.org", selector), dkim.generate(kind))  # type: ignore[arg-type]
    variants = {
        "unsigned": {},
        "rsa-sha256": {"dkim_selectors": ["bench"], "dkim_key_dir": keys},
        "rsa-sha256 + ed25519-sha256": {
            "dkim_selectors": ["bench", "benched"],
            "dkim_key_dir": keys,
        },
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    with dataset.database(backend) as target, RawSmtpSink() as sink:
        dataset.prepare(target, size)
        dataset.snapshot(target)
        base = {"smtp_host": "127.0.0.1", "smtp_port": sink.port}
        for _ in range(repeats):
            for name, extra in variants.items():
                figures, _ = run_campaign(target, size, "smtp", 1, {**base, **extra}, sink)
                rates[name].append(figures["send_rate"])
                cpu[name].append(figures["cpu_us_per_recipient"])
                log(f"{backend} {size:,} smtp {name}: {figures['send_rate']:,.0f}/s sending")
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "backend": backend,
        "size": size,
        "rates": rates,
        "median": median,
        "cpu": {name: statistics.median(values) for name, values in cpu.items()},
        "ratio": {name: median[name] / median["unsigned"] for name in variants},
    }


# --- pacing -----------------------------------------------------------------------------


def _domains(count: int = 50) -> tuple[list[str], list[float]]:
    names = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "hotmail.com", "aol.com"]
    names += [f"org{n}.example" for n in range(count - len(names))]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(count)]
    return names, weights


def pacing(size: int = 1_000_000, batch: int = 1000) -> dict[str, Any]:
    from newsletter.deliverability.pacing import Pacer
    from newsletter.sending.types import Addressee
    from newsletter.transports.base import BatchResult, Outcome, RecipientResult

    names, weights = _domains()
    rng = random.Random(17)
    people = [
        Addressee(n, n, f"r{n}@{d}", None, "h")
        for n, d in enumerate(rng.choices(names, weights, k=size))
    ]
    share = {d: sum(1 for p in people if p.domain == d) / size for d in names[:10]}
    rate = 25_000.0  # recipients per second the engine sends at without limits
    # Limits on the ten biggest: each at 60 % of what it would get at full speed.
    tight = {d: share[d] * rate * 60 * 0.6 for d in names[:10]}
    out: dict[str, Any] = {"recipients": size, "domains": len(names), "top_share": share[names[0]]}
    for label, limits in (("no limits", {}), ("limits on the 10 largest", tight)):
        pacer = Pacer(limits)
        now = datetime(2026, 4, 3, tzinfo=UTC)
        queue = [people[i : i + batch] for i in range(0, size, batch)]
        waiting: list[tuple[datetime, list[Addressee]]] = []
        sent = claims = 0
        cpu = 0.0
        while queue or waiting:
            ready = [w for w in waiting if w[0] <= now]
            waiting = [w for w in waiting if w[0] > now]
            if queue:
                todo = queue.pop(0)
            elif ready:
                todo = ready.pop(0)[1]
            else:
                now = min(w[0] for w in waiting)
                continue
            waiting.extend(ready)
            claims += 1
            start = time.process_time()
            admitted, later = pacer.admit(todo, now)
            cpu += time.process_time() - start
            result = BatchResult(
                tuple(
                    RecipientResult(str(a.delivery_id), Outcome.ACCEPTED, detail="250")
                    for a in admitted
                )
            )  # fmt: skip (the messenger's answer: not the pacer's cost)
            start = time.process_time()
            pacer.observe(admitted, result, now)
            cpu += time.process_time() - start
            if later is not None:
                kept = {a.delivery_id for a in admitted}
                waiting.append((later, [a for a in todo if a.delivery_id not in kept]))
            sent += len(admitted)
            now += timedelta(seconds=len(admitted) / rate if admitted else 0.01)
        out[label] = {
            "us_per_recipient": cpu / size * 1e6,
            "claims_per_1000": claims / size * 1000,
            "simulated_seconds": (now - datetime(2026, 4, 3, tzinfo=UTC)).total_seconds(),
        }
    return out


# --- report -----------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    lines = [BEGIN, "", f"Command: `{results['command']}`.  {results['machine']}", ""]
    per = results["per_message"]
    lines += ["### DKIM per message", "",
              f"Issue 42, {per['messages']} recipients, {per['bytes']:,} bytes a message; "
              "CPU per message, median of the repeats.", "",
              "| variant | µs per message | of which signing |", "|---|---|---|"]  # fmt: skip
    unsigned = per["us"]["unsigned"]
    for name, us in per["us"].items():
        extra = "-" if name == "unsigned" else f"{us - unsigned:.0f}"
        lines.append(f"| {name} | {us:.0f} | {extra} |")
    lines += ["", "### DKIM in SMTP campaigns", "",
              "| database | recipients | variant | recipients/s sending (runs) | ratio to unsigned | worker CPU µs / recipient |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for camp in results["campaigns"]:
        for name, rate in camp["median"].items():
            runs = ", ".join(f"{r:,.0f}" for r in camp["rates"][name])
            lines.append(
                f"| {camp['backend']} | {camp['size']:,} | {name} | {rate:,.0f} ({runs}) | "
                f"{camp['ratio'][name]:.0%} | {camp['cpu'][name]:.0f} |"
            )
    pace = results["pacing"]
    lines += ["", "### Pacing", "",
              f"{pace['recipients']:,} recipients across {pace['domains']} domains (the largest "
              f"{pace['top_share']:.0%}), batches of 1000, a clock at 25,000 recipients/s.", "",
              "| limits | pacer CPU µs / recipient | claims per 1000 recipients | simulated campaign s |",
              "|---|---|---|---|"]  # fmt: skip
    for label in ("no limits", "limits on the 10 largest"):
        row = pace[label]
        lines.append(
            f"| {label} | {row['us_per_recipient']:.2f} | {row['claims_per_1000']:.2f} | "
            f"{row['simulated_seconds']:.0f} |"
        )
    return "\n".join([*lines, "", END])


def _machine_line(info: dict[str, Any]) -> str:
    return (
        f"Machine: {info['cores']} cores ({info['cpu']}), Python {info['python']}, "
        f"PostgreSQL {info['postgresql']}; {info['date']}; load average "
        f"{info['load_start']} at the start, {machine.load_average()} at the end."
    )


def write(path: Path, text: str) -> None:
    current = path.read_text()
    if BEGIN in current:
        head, _, rest = current.partition(BEGIN)
        current = head + text + rest.partition(END)[2]
    else:
        current = current.rstrip() + "\n\n## Deliverability\n\n" + text + "\n"
    path.write_text(current)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="SMTP campaign recipients")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pacing-size", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not dataset.postgres_available():
        backends.remove("postgresql")
    info = machine.describe(dataset.PG_URL)
    results: dict[str, Any] = {"machine": _machine_line(info)}
    results["per_message"] = dkim_per_message(repeats=args.repeats)
    log(f"dkim per message: {results['per_message']['us']}")
    results["campaigns"] = [dkim_campaigns(b, args.size, args.repeats) for b in backends]
    results["pacing"] = pacing(args.pacing_size)
    log(f"pacing: {results['pacing']}")
    results["machine"] = _machine_line({**info, "load_start": info["load_start"]})
    minutes = (time.monotonic() - started) / 60
    shown = " ".join(a for a in (argv or []) if a != "--write")
    results["command"] = f"python -m bench.deliverability {shown}".strip() + f" ({minutes:.1f} min)"
    text = markdown(results)
    print(text)
    if args.write:
        write(REPO / "BENCHMARKS.md", text)
    return results


if __name__ == "__main__":
    main()
