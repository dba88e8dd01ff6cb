"""Limits on request bodies, background import jobs and their failures (both backends)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from newsletter import jobs
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Job, Subscriber
from newsletter.models.base import utcnow
from newsletter.web.bodylimit import BodyLimit
from tests.admin_helpers import (
    fast_hashing,  # noqa: F401 - autouse fixture
    finished_job,
    make_client,
    signed_in_client,
)

WIDE = b"email," + b"x" * 140_000 + b"\nann@example.org,1\n"


def test_a_json_body_over_the_limit_is_refused_before_it_is_read(
    db: Database, settings: Settings
) -> None:
    client = make_client(db, settings.model_copy(update={"request_max_bytes": 64 * 1024}))
    big = b'{"email": "a@example.org", "name": "' + b"x" * 200_000 + b'"}'
    answer = client.post("/api/subscribe", content=big,
                         headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/json")
    assert "larger than the 64 KB" in answer.json()["detail"]
    page = client.post("/subscribe", content=b"email=" + b"x" * 100_000,
                       headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "Too large" in page.text


def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    """No Content-Length (chunked): counted while it arrives, the rest is never asked for."""
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}] * 50
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/api/subscribe", "headers": [], "method": "POST"}
    asyncio.run(BodyLimit(app, default=4_500, uploads=10**9)(scope, receive, send))
    assert sum(received) == 4_000 and len(chunks) == 45  # stopped at the fifth chunk
    assert sent[0]["status"] == 413 and b"larger than" in sent[1]["body"]


def test_admin_subscriber_import_of_a_wide_header_is_a_clear_message(
    db: Database, settings: Settings
) -> None:
    client = signed_in_client(db, settings, "admin")
    started = client.form("/admin/subscribers/import",
                          files={"files": ("wide.csv", WIDE, "text/csv")})  # fmt: skip
    state, page = finished_job(client, started)
    assert state["state"] == "failed" and "Traceback" not in page
    assert "wide.csv:1: a field is longer than 131,072 characters" in state["error"]
    assert "nothing was imported" in page
    library = client.form("/admin/library/import",
                          files={"files": ("wide.csv", b"title," + WIDE, "text/csv")})  # fmt: skip
    state, _ = finished_job(client, library)
    assert state["state"] == "failed" and "longer than 131,072 characters" in state["error"]


def test_admin_preview_of_a_tool_export_stores_nothing(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "admin")
    export = (
        b"id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,"
        b"created_at,deleted_at,labels,tiers\n"
        b"1,paulo@example.org,Paulo,,true,false,,2022-01-15T10:00:00.000Z,,Equity,Free\n"
        b"2,quiet@example.org,Quiet,,false,false,,2022-01-15T10:00:00.000Z,,,Free\n"
    )
    started = client.form("/admin/subscribers/import", {"preview": "1"},
                          files={"files": ("members.csv", export, "text/csv")})  # fmt: skip
    state, page = finished_job(client, started)
    assert state["state"] == "done" and "Preview: nothing was stored" in page
    assert "Ghost export. Would add 1" in page and "suppressions to carry over 1" in page
    with db.session() as session:
        assert session.scalars(select(Subscriber)).all() == []
    started = client.form("/admin/subscribers/import", {"format": "ghost"},
                          files={"files": ("members.csv", export, "text/csv")})  # fmt: skip
    _, page = finished_job(client, started)
    assert "Ghost export. Added 1" in page


def test_job_pages_are_private_and_editors_cannot_import_subscribers(
    db: Database, settings: Settings
) -> None:
    admin = signed_in_client(db, settings, "admin")
    started = admin.form("/admin/subscribers/import",
                         files={"files": ("a.csv", b"email\na@example.org\n", "text/csv")})  # fmt: skip
    state, _ = finished_job(admin, started)
    editor = signed_in_client(db, settings, "editor")
    assert editor.get(f"/admin/jobs/{state['id']}").status_code == 403
    assert editor.get(f"/admin/api/jobs/{state['id']}").status_code == 403
    signed_out = make_client(db, settings)
    assert signed_out.get(f"/admin/api/jobs/{state['id']}").status_code == 401


def test_a_job_that_raises_is_failed_with_its_reason(db: Database) -> None:
    with db.session() as session:
        job_id = jobs.create(session, kind="import:resources", owner="a@example.org", label="x").id

    def work(reporter: jobs.Reporter) -> dict[str, Any]:
        reporter.progress(1, 10)
        raise RuntimeError("disk on fire")

    runner = jobs.JobRunner(db)
    runner.submit(job_id, work)
    runner.shutdown(wait=True)
    with db.session() as session:
        job = jobs.get(session, job_id)
        assert (job.state, job.done, job.total) == ("failed", 1, 10)
        assert job.error is not None and "RuntimeError" in job.error


def test_a_job_whose_process_died_is_marked_failed_not_left_running(db: Database) -> None:
    with db.session() as session:
        job_id = jobs.create(session, kind="import:resources", owner="a@example.org", label="x").id
        session.execute(update(Job).where(Job.id == job_id).values(
            state="running", updated_at=utcnow() - jobs.STALE_AFTER - timedelta(seconds=1)))  # fmt: skip
    with db.session() as session:
        job = jobs.get(session, job_id)
        assert job.state == "failed" and job.error == jobs.INTERRUPTED
        assert jobs.as_dict(job)["finished"] is True
