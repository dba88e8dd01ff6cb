"""Background jobs in the admin: start one from an upload, watch its progress bar, read its report.

An upload is copied into the job's own folder, a ``jobs`` row is created and
the work goes to the app's ``JobRunner`` (one worker thread of this process);
the browser is sent to ``/admin/jobs/<id>``, whose script polls
``/admin/api/jobs/<id>`` every second and reloads the page when the job is done
(without JavaScript the page refreshes itself).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from newsletter import jobs
from newsletter.admin import uploads
from newsletter.admin.access import Editor, Forbidden, editor_router, page
from newsletter.admin.auth import Identity
from newsletter.errors import NotFoundError
from newsletter.models.jobs import Job
from newsletter.web.context import Ctx, WebContext

router = editor_router()
ADMIN_KINDS = ("import:subscribers",)  # jobs only admins may start or see
_lock = threading.Lock()


def runner(request: Request, ctx: WebContext) -> jobs.JobRunner:
    """The app's job runner, built on first use (``create_app`` needs no job wiring)."""
    found = getattr(request.app.state, "jobs", None)
    if found is None:
        with _lock:
            found = getattr(request.app.state, "jobs", None)
            if found is None:
                found = request.app.state.jobs = jobs.JobRunner(ctx.db)
    assert isinstance(found, jobs.JobRunner)
    return found


def start(
    request: Request, ctx: WebContext, identity: Identity, *, kind: str,
    files: Sequence[UploadFile], work: Callable[[list[uploads.Saved]], jobs.Work],
) -> Response:  # fmt: skip
    """Save the uploads, create the job, hand it to the runner and show its page."""
    folder = ctx.settings.var_dir / "jobs" / uuid.uuid4().hex
    items = uploads.keep(files, folder, max_bytes=ctx.settings.import_max_bytes)
    with ctx.db.session() as session:
        job = jobs.create(session, kind=kind, owner=identity.email,
                          label=", ".join(item.name for item in items))  # fmt: skip
        job_id = job.id
    runner(request, ctx).submit(job_id, work(items), folder=folder)
    return RedirectResponse(f"/admin/jobs/{job_id}", status_code=303)


def _visible(job: Job, identity: Identity) -> Job:
    if job.kind in ADMIN_KINDS and not identity.is_admin:
        raise Forbidden("this job is for admins")
    if not identity.is_admin and job.owner != identity.email:
        raise NotFoundError(f"no job #{job.id}")
    return job


@router.get("/jobs/{job_id:int}")
def job_page(request: Request, ctx: Ctx, identity: Editor, job_id: int) -> Response:
    with ctx.db.session() as session:
        job = _visible(jobs.get(session, job_id), identity)
        return page(request, "jobs/detail.html.j2", job=job, state=jobs.as_dict(job),
                    report=job.report or {})  # fmt: skip


@router.get("/api/jobs/{job_id:int}")
def job_json(ctx: Ctx, identity: Editor, job_id: int) -> JSONResponse:
    """The progress bar's poll: small, and 401 without a session like every admin API."""
    with ctx.db.session() as session:
        return JSONResponse(jobs.as_dict(_visible(jobs.get(session, job_id), identity)))
