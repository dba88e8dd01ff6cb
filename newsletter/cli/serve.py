"""``newsletter serve``: the public web app (sign-up, confirm, preferences, unsubscribe)."""

from __future__ import annotations

import os
import signal

import typer

from newsletter.cli.common import app_context, console


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    forwarded_allow_ips: str = typer.Option(
        "127.0.0.1",
        help="Proxies trusted to set X-Forwarded-For (the client IP used for rate limits).",
    ),
    worker: bool = typer.Option(
        True,
        "--worker/--no-worker",
        help="Also start due campaigns and send them here (--no-worker: separate workers do).",
    ),
    processes: int = typer.Option(
        1, min=1, max=64, help="Web processes (the scheduler and worker still run once)."
    ),
) -> None:
    """Serve the web app and, unless --no-worker, the scheduler and a send worker in-process."""
    import uvicorn

    from newsletter.scheduling.runner import InProcess
    from newsletter.tracking.recorder import Drainer, Recorder
    from newsletter.web import create_app, require_secret
    from newsletter.web.asgi import DRAINED_ELSEWHERE, SENDS_IN_PROCESS

    app_ctx = app_context(ctx)
    require_secret(app_ctx.settings)  # before touching the database: fail fast
    app = (
        create_app(app_ctx.settings, app_ctx.db, sends_in_process=worker)
        if processes == 1
        else None
    )
    console.print(f"serving on http://{host}:{port}/ (public URL {app_ctx.settings.base_url})")
    console.print(
        "sending here: scheduled and started campaigns go out from this process"
        if worker
        else "not sending here (--no-worker): 'newsletter worker' and 'scheduler run' send",
        highlight=False,
    )
    background = InProcess(app_ctx.db, app_ctx.settings) if worker else None
    if background is not None:
        background.start()
        # uvicorn re-raises SIGTERM/SIGINT once it has shut down; with the default handler
        # that kills the process before the worker finishes its batch.  Ours lets it return.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: background.stop_event.set())
    options = {
        "host": host, "port": port, "proxy_headers": True, "server_header": False,
        "forwarded_allow_ips": forwarded_allow_ips, "log_level": "info",
    }  # fmt: skip
    try:
        if app is not None:
            uvicorn.run(app, **options)  # type: ignore[arg-type]
        else:  # each process builds its own app from the same settings (newsletter.web.asgi)
            if worker:
                os.environ[SENDS_IN_PROCESS] = "1"
            os.environ[DRAINED_ELSEWHERE] = "1"
            drainer = Drainer(Recorder.build(app_ctx.settings, app_ctx.db))
            drainer.start()
            try:
                uvicorn.run("newsletter.web.asgi:app", factory=True, workers=processes, **options)  # type: ignore[arg-type]
            finally:
                drainer.close()
    finally:
        if background is not None:
            background.stop()
