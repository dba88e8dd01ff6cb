"""A short version of ``bench/load_subscribe.py`` (wrk against ``newsletter serve``) for CI.

A few seconds per backend: no 5xx and no socket errors under concurrent
sign-ups and one-click unsubscribes, every sign-up answered 202 and mailed,
and a flood of sign-ups for one address sends it one confirmation, not one
per request.  The full run and its numbers are in BENCHMARKS.md "## Load".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import load_subscribe
from newsletter.config import Settings


@pytest.fixture
def wrk() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is required in CI (make system-deps)")
        pytest.skip("wrk is not installed (apt-get install wrk)")


def test_a_short_load_run_of_sign_ups_and_one_click_unsubscribes(
    wrk: None, settings: Settings, tmp_path: Path
) -> None:
    result = load_subscribe.run(
        "postgresql" if settings.database_schema else "sqlite",
        duration=1.0,
        connections=8,
        threads=2,
        subscribers=300,
        database_url=settings.database_url,
        schema=settings.database_schema,
        workdir=tmp_path,
    )
    by_name = {scenario.name: scenario for scenario in result.scenarios}
    assert set(by_name) == {"subscribe", "one-click", "victim flood"}
    for scenario in result.scenarios:
        assert scenario.requests > 10, scenario
        assert scenario.server_errors == 0 and scenario.socket_errors == 0, scenario
    assert set(by_name["subscribe"].statuses) == {"202"}
    assert set(by_name["one-click"].statuses) == {"200"}
    assert set(by_name["victim flood"].statuses) == {"202"}  # the same answer every time
    assert result.victim_emails == 1, "a flood of sign-ups must send one confirmation"
    signups = result.confirmation_emails - result.victim_emails
    assert signups >= by_name["subscribe"].requests  # every answered sign-up was mailed
