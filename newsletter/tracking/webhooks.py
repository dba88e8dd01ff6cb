"""``POST /webhooks/sendgrid``: verify, store once, apply.

The body is read raw and capped before anything else happens, because the
signature covers the exact bytes and an unauthenticated client must not make
us buffer or parse megabytes.  Answers: 200 stored (replays count as
duplicates), 400 not JSON, 403 bad or stale signature, 413 too large, 503 no
verification key configured (we never accept unsigned events).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from newsletter.errors import ValidationError
from newsletter.tracking.events import BouncePolicy, IngestReport, ingest, parse_events
from newsletter.tracking.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    Verifier,
)
from newsletter.web.context import Ctx, WebContext

MAX_BODY_BYTES = 5 * 1024 * 1024  # SendGrid batches events; real posts are far below this

router = APIRouter(tags=["webhooks"])


class BodyTooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _ingest(ctx: WebContext, body: bytes) -> tuple[IngestReport, int]:
    events, ignored = parse_events(body)
    with ctx.db.session() as session:
        policy = BouncePolicy.from_settings(ctx.settings)
        report = ingest(events, session=session, now=ctx.clock(), policy=policy)
    report.ignored = ignored
    return report, ignored


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/webhooks/sendgrid", summary="SendGrid Event Webhook (signed)")
async def sendgrid_events(request: Request, ctx: Ctx) -> Any:
    key = ctx.settings.sendgrid_webhook_public_key
    if not key:
        return _error(503, "webhook verification key is not configured")
    try:
        body = await _read_capped(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        return _error(413, "body too large")
    verifier = Verifier(public_key=key, max_age_seconds=ctx.settings.webhook_max_age_seconds)
    try:
        verifier.verify(
            body,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(TIMESTAMP_HEADER),
            now=ctx.clock().timestamp(),
        )
    except SignatureError as exc:
        return _error(403, exc.message)
    try:
        report, _ = await run_in_threadpool(_ingest, ctx, body)
    except ValidationError as exc:
        return _error(400, exc.message)
    return {
        "received": report.received,
        "stored": report.stored,
        "duplicates": report.duplicates,
        "ignored": report.ignored,
        "suppressed": report.suppressed,
    }
