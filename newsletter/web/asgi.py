"""The web app as an ASGI factory, for servers that start it by name in several processes.

``newsletter serve --processes N`` (and ``uvicorn --factory
newsletter.web.asgi:app``) build settings from ``NEWSLETTER_*`` and
``newsletter.toml`` in each process, as every entry point does.  The
scheduler, the send worker and the tracking drain never run here then:
``serve`` runs them once, in its supervising process.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from newsletter.config import load_settings
from newsletter.db import connect
from newsletter.web import create_app

SENDS_IN_PROCESS = "NEWSLETTER_SERVE_SENDS"  # set by serve: the supervisor sends
# Set by serve too: the supervisor drains every process's spool, so the web processes'
# event loops never share their GIL with a drain.
DRAINED_ELSEWHERE = "NEWSLETTER_SERVE_DRAINS"


def app() -> FastAPI:
    settings = load_settings()
    return create_app(
        settings, connect(settings), sends_in_process=bool(os.environ.get(SENDS_IN_PROCESS)),
        drains_spool=not os.environ.get(DRAINED_ELSEWHERE),
    )  # fmt: skip
