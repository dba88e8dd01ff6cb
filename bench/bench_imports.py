"""Bulk imports: a 200,000-row (about 7 MB) resource CSV and a 200,000-row subscriber CSV.

    python -m bench.bench_imports [--rows 200000] [--backend sqlite|postgresql|both]

Generates both files (realistic titles, URLs, summaries with topic words; a
tenth of the resource rows repeat an earlier URL so merges are exercised, a
few subscriber rows repeat an address or are invalid), imports each into a
fresh database through the same functions the CLI uses (whole file parsed
first, committed chunks), then imports it a second time (everything
unchanged).  Reports rows per second end to end, parse included; the target
is 10,000 rows/s on both backends.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.dataset import Target, database, postgres_available
from newsletter.config import classify_topics
from newsletter.db import connect
from newsletter.resources import library
from newsletter.subscribers import service

TARGET_ROWS_PER_SECOND = 10_000
WORDS = [
    "learning", "students", "schools", "teachers", "equity", "assessment", "competency",
    "personalized", "policy", "districts", "classroom", "future", "readiness", "career",
    "college", "leadership", "innovation", "community", "agency", "data", "design", "systems",
    "change", "rural", "urban", "research", "practice", "report", "guide",
]  # fmt: skip
TYPES = ("article", "report", "video", "podcast", "", "", "", "")  # half left to inference


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def write_resources(path: Path, rows: int, seed: int = 7) -> None:
    """About 36 bytes a row: 200,000 rows make a file of about 7 MB."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["title", "url", "type"])
        for n in range(rows):
            ref = rng.randrange(n) if n > 10 and rng.random() < 0.1 else n  # a repeat
            out.writerow([f"{rng.choice(WORDS).capitalize()} {ref:x}", f"https://k.org/{ref:x}",
                          rng.choice(TYPES)])  # fmt: skip


def write_subscribers(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    topics = ["Equity", "Assessment", "Personalized Learning", "Student Agency"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["email", "name", "topics"])
        for n in range(rows):
            ref = rng.randrange(n) if n > 10 and rng.random() < 0.01 else n
            email = f"reader{ref}@example{ref % 97}.org" if rng.random() > 0.001 else "broken"
            chosen = "; ".join(rng.sample(topics, rng.randrange(0, 3)))
            out.writerow([email, f"Reader {ref}", chosen])


def _timed(fn: Any) -> tuple[float, float, Any]:
    """Wall seconds and this process's CPU seconds (the machine is shared: CPU time is what
    a load average of 5 on 2 cores does not double; PostgreSQL's own work is not in it)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def run_backend(target: Target, rows: int, folder: Path) -> dict[str, Any]:
    settings = target.settings()
    db = connect(settings)
    resources_csv, subscribers_csv = folder / "resources.csv", folder / "subscribers.csv"
    write_resources(resources_csv, rows)
    write_subscribers(subscribers_csv, rows)
    topics = classify_topics(settings)
    allowed = [t.name for t in settings.topics]
    results: dict[str, Any] = {"backend": target.backend, "rows": rows,
                               "resource_csv_mb": round(resources_csv.stat().st_size / 1e6, 2)}  # fmt: skip

    def import_resources() -> library.ImportReport:
        records, warnings = library.parse_files([resources_csv])
        report = library.ImportReport(skipped=warnings)
        with db.session() as session:
            library.import_records(records, session=session, topics=topics, report=report,
                                   commit_chunks=True)  # fmt: skip
        return report

    def import_subscribers() -> service.ImportReport:
        with db.session() as session:
            return service.import_csv(subscribers_csv, session=session, allowed_topics=allowed,
                                      commit_chunks=True)  # fmt: skip

    for name, fn in (("resources", import_resources), ("subscribers", import_subscribers)):
        for run in ("first", "again"):
            seconds, cpu, report = _timed(fn)
            counts = report.as_dict()
            results[f"{name}_{run}"] = {
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows / seconds),
                "cpu_seconds": round(cpu, 2),
                "added": counts["added"],
                "unchanged": counts["unchanged"],
            }
    db.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not postgres_available():
        print("PostgreSQL is not reachable; skipping it", file=sys.stderr)
        backends.remove("postgresql")
    failed = False
    for backend in backends:
        load = os.getloadavg()[0]
        with database(backend) as target:
            result = run_backend(target, args.rows, target.folder)
        result["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        print(json.dumps(result))
        slowest = min(result[k]["rows_per_second"] for k in result if isinstance(result[k], dict))
        failed = failed or slowest < TARGET_ROWS_PER_SECOND
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
