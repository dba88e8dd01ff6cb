"""Subprocess entry points for the fault tests (settings from ``NEWSLETTER_*``).

``python -m tests.reliability.procs start <campaign id>`` is ``newsletter
campaign start`` with a fault: ``KILL_FREEZE=before_assign`` SIGKILLs the
process after the ledger rows were inserted and before batches are assigned,
``KILL_FREEZE=before_commit`` after batches were assigned and before the
transaction commits.  Either way the freeze is one transaction, so nothing of
it may survive.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from newsletter.config import load_settings
from newsletter.db import connect
from newsletter.sending import campaigns, freeze, service


def _kill_in_freeze(point: str) -> None:
    original = freeze.assign_batches

    def assign_batches(campaign_id: int, **kwargs: Any) -> int:
        if point == "before_assign":
            os.kill(os.getpid(), signal.SIGKILL)
        created = original(campaign_id, **kwargs)
        if point == "before_commit":
            os.kill(os.getpid(), signal.SIGKILL)
        return created

    setattr(campaigns, "assign_batches", assign_batches)  # noqa: B010 - what start_campaign calls


def start(campaign_id: int) -> None:
    point = os.environ.get("KILL_FREEZE")
    if point:
        _kill_in_freeze(point)
    settings = load_settings()
    db = connect(settings)
    try:
        started = service.start(db, settings, campaign_id)
    finally:
        db.dispose()
    print("started" if started else "already started", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "start":
        start(int(args[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")
