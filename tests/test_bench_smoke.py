"""The benchmark still runs end to end and reports every metric (not how fast: CI is noisy).

A tiny plan on SQLite, and on PostgreSQL when the test database is reachable:
one SendGrid, SMTP and outbox campaign each through worker processes, the
floors, and webhook ingest directly and over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report, run
from bench.dataset import postgres_available
from tests.conftest import PG_URL

TINY = run.Plan(
    sizes=[300],
    repeats={300: 1},
    postgres_workers=[1, 2],
    smtp_size=300,
    smtp_repeats=1,
    outbox_size=20,
    webhook_size=300,
    webhook_recipients=100,
    webhook_repeats=1,
    floor_sizes=[300],
    floor_repeats=1,
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    backends = ["sqlite"] + (["postgresql"] if postgres_available(PG_URL) else [])
    outcome = run.run(TINY, backends, PG_URL)
    outcome["command"] = "tests/test_bench_smoke.py"
    folder = tmp_path_factory.mktemp("bench")
    (folder / "results.json").write_text(json.dumps(outcome))  # it must be JSON-able
    return outcome


@pytest.mark.timeout(600)
def test_every_path_reports_every_metric(results: dict[str, object]) -> None:
    campaigns = results["campaigns"]
    assert isinstance(campaigns, list)
    paths = {(c["transport"], c["backend"], c["workers"]) for c in campaigns}
    assert {("sendgrid", "sqlite", 1), ("smtp", "sqlite", 1), ("outbox", "sqlite", 1)} <= paths
    for entry in campaigns:
        for figures in entry["runs"]:
            missing = [m for m in report.CAMPAIGN_METRICS if m not in figures]
            assert not missing, (entry["transport"], missing)
            assert figures["recipients"] == entry["size"]
            assert figures["peak_rss_mb"] > 0 and figures["compilations"] >= 1
            assert figures["statements_per_1000"] > 0 and figures["provider_calls_per_1000"] > 0


def test_floors_and_webhooks_are_measured(results: dict[str, object]) -> None:
    floors = results["floors"]
    webhooks = results["webhooks"]
    assert isinstance(floors, list) and isinstance(webhooks, list)
    assert {f["kind"] for f in floors} == {
        "sendgrid",
        "sendgrid build only",
        "smtp",
        "smtp, 2 processes",
        "outbox",
    }
    for floor in floors:
        for figures in floor["runs"]:
            assert all(m in figures for m in report.FLOOR_METRICS)
            assert figures["rate"] > 0
    assert {w["mode"] for w in webhooks} == {"direct", "HTTP (uvicorn, signed)"}
    for entry in webhooks:
        for figures in entry["runs"]:
            assert all(m in figures for m in report.WEBHOOK_METRICS)
            assert figures["events"] > 0 and figures["stored"] > 0


def test_report_renders_every_table_and_keeps_the_rendering_section(
    results: dict[str, object], tmp_path: Path
) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\nMachine: old.\n\n## Rendering\n\nkept as it is\n")
    report.write(target, results)
    report.write(target, results)  # a second run replaces the section, never duplicates it
    text = target.read_text()
    assert text.count(report.BEGIN) == 1 and text.endswith("kept as it is\n")
    for header in ("recipients/s end to end", "SQL round trips / 1000", "peak RSS MB"):
        assert header in text
    assert "end to end / floor" in text and "events/s" in text
    assert "cores" in text and "PostgreSQL" in text and "SQLite" in text


def test_import_benchmark_runs_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/bench_imports.py on a few hundred rows: every measure present, re-runs unchanged."""
    from bench import bench_imports

    bench_imports.main(["--rows", "300", "--backend", "sqlite"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("resources", "subscribers"):
        first, again = result[f"{name}_first"], result[f"{name}_again"]
        assert first["added"] > 250 and again["added"] == 0
        assert again["unchanged"] >= first["added"]  # everything stored is found again
        assert first["rows_per_second"] > 0 and first["cpu_seconds"] >= 0


def test_deliverability_bench_runs_and_reports(tmp_path: Path) -> None:
    """bench.deliverability on a tiny scale: every figure present, the Markdown block complete."""
    from bench import deliverability

    results: dict[str, object] = {
        "machine": "tiny",
        "command": "tests/test_bench_smoke.py",
        "per_message": deliverability.dkim_per_message(count=20, repeats=1),
        "campaigns": [deliverability.dkim_campaigns("sqlite", 200, 1)],
        "pacing": deliverability.pacing(5_000),
    }
    per = results["per_message"]
    assert isinstance(per, dict) and set(per["us"]) >= {"unsigned", "rsa-sha256"}
    assert per["us"]["rsa-sha256"] > per["us"]["unsigned"]
    text = deliverability.markdown(results)
    assert text.startswith(deliverability.BEGIN) and text.endswith(deliverability.END)
    assert "| sqlite | 200 | rsa-sha256 |" in text and "| limits on the 10 largest |" in text
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n")
    deliverability.write(target, text)
    deliverability.write(target, text)  # replaces its block, never appends a second
    assert target.read_text().count(deliverability.BEGIN) == 1


def test_wire_bench_renders_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    """``bench.wire``: the tracked batch really carries tracked links (and the untracked none)."""
    from bench import wire

    assert wire.main(["--messages", "20", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["untracked", "tracked"]
    assert b"/r/" not in wire.sample(tracking=False) and b"/r/" in wire.sample(tracking=True)
