"""``newsletter serve``: the public web app (sign-up, confirm, preferences, unsubscribe)."""

from __future__ import annotations

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
) -> None:
    """Serve the web app with uvicorn; refuses the default secret key unless debug is on."""
    import uvicorn

    from newsletter.web import create_app, require_secret

    app_ctx = app_context(ctx)
    require_secret(app_ctx.settings)  # before touching the database: fail fast
    app = create_app(app_ctx.settings, app_ctx.db)
    console.print(f"serving on http://{host}:{port}/ (public URL {app_ctx.settings.base_url})")
    uvicorn.run(
        app, host=host, port=port, proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
        server_header=False, log_level="info",
    )  # fmt: skip
