"""A worker process for multi-process tests: settings from NEWSLETTER_* env, optional fault.

``KILL_AT=<stage>`` SIGKILLs the process at an engine stage ("claimed",
"submitting", "sent"): "sent" is after the provider's 202 and before the
ledger commit, the worst moment to die.  ``UNTIL_IDLE=1`` exits when nothing
is due; otherwise the worker runs until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading

from newsletter.config import load_settings
from newsletter.db import connect
from newsletter.sending import service
from newsletter.sending.types import ClaimedBatch


def main() -> None:
    kill_at = os.environ.get("KILL_AT")
    settings = load_settings()
    db = connect(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def hook(stage: str, _batch: ClaimedBatch) -> None:
        if stage == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    with service.open_worker(db, settings, hook=hook) as worker:
        until = (lambda: True) if os.environ.get("UNTIL_IDLE") else None
        worker.policy = type(worker.policy)(idle_poll_seconds=0.2)
        stats = worker.run(stop, until=until)
    print(f"batches={stats.batches} accepted={stats.accepted}", flush=True)
    db.dispose()


if __name__ == "__main__":
    main()
