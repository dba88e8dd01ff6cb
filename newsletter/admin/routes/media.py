"""Images in the admin: upload or fetch one for an item, and the media library page to reuse them.

The upload path has its own body limit (``image_max_bytes``, enforced while
the body streams in: a 30 MB file is refused before it is read), and every
refusal is answered in the editor as one line: nothing is stored from a file
or URL that is refused (``newsletter.media.library``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from newsletter.admin import uploads
from newsletter.admin.access import Editor, editor_router, page
from newsletter.admin.routes.issues import author, change
from newsletter.errors import ValidationError
from newsletter.issues import store
from newsletter.media import library
from newsletter.media.images import EMAIL_WIDTHS
from newsletter.media.storage import storage_for
from newsletter.models import Issue, MediaImage
from newsletter.web.context import Ctx, WebContext

router = editor_router()
UPLOAD_PATH = "/admin/media/upload"
Line = Annotated[str, Form(max_length=2_000)]


def _target(fields: dict[str, str]) -> tuple[int, int] | None:
    """The issue number and item id the image is for (none: the library alone)."""
    number, item = fields.get("issue", ""), fields.get("item_id", "")
    if number.isdigit() and item.isdigit():
        return int(number), int(item)
    return None


def _library_page(
    request: Request, ctx: WebContext, *, issue: int | None = None, item: int | None = None,
    error: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    storage = storage_for(ctx.settings)
    with ctx.db.session() as session:
        rows = library.list_images(session=session)
        images = [(row, library.url_for(row, storage, min(row.variants))) for row in rows]
        target = None
        if issue is not None and item is not None:
            found = store.get_issue(issue, session=session)
            target = {"issue": found.number, "item": item, "title": found.title}
        return page(request, "media/library.html.j2", status_code, images=images,
                    target=target, error=error, widths=EMAIL_WIDTHS,
                    image_max_mb=ctx.settings.image_max_bytes // (1024 * 1024))  # fmt: skip


@router.get("/media")
def media_page(
    request: Request, ctx: Ctx, identity: Editor,
    issue: Annotated[int | None, Query(ge=1)] = None,
    item: Annotated[int | None, Query(ge=1)] = None,
) -> Response:  # fmt: skip
    """Every stored image, newest first; with ``issue`` and ``item``, each can be put on it."""
    return _library_page(request, ctx, issue=issue, item=item)


def _kept_and_used(
    request: Request, ctx: WebContext, data: bytes | None, name: str, fields: dict[str, str],
    error: str | None,
) -> Response:  # fmt: skip
    """Store the image (and put it on the item) in one transaction, or say why not."""
    storage = storage_for(ctx.settings)

    def keep(session: Session) -> MediaImage:
        if error is not None or data is None:
            raise ValidationError(error or "choose an image")
        return library.keep(data, name, origin=fields.get("url") or "upload",
                            author=author(request), storage=storage, session=session)  # fmt: skip

    target = _target(fields)
    if target is None:
        try:
            with ctx.db.session() as session:
                keep(session)
        except ValidationError as exc:
            return _library_page(request, ctx, error=f"Not saved: {exc.message}",
                                 status_code=422)  # fmt: skip
        return RedirectResponse("/admin/media?done=image-stored", status_code=303)
    number, item_id = target

    def action(issue: Issue, session: Session) -> None:
        library.use_on_item(issue, item_id, keep(session), fields.get("alt", ""),
                            storage=storage, session=session)  # fmt: skip

    return change(request, ctx, number, action, anchor=f"#item-{item_id}",
                  label="put an image on an item", done="image-used")  # fmt: skip


@router.post("/media/upload")
async def upload(request: Request, ctx: Ctx, identity: Editor) -> Response:
    """One image file, for an item (``issue`` and ``item_id`` fields) or the library alone."""
    files, fields = await uploads.form_upload(request, name="file")
    chosen = next((f for f in files if f.filename), None)
    data, name, error = None, "the image", None
    if chosen is None:
        error = "choose an image file to upload"
    else:
        name = uploads.safe_name(chosen.filename)
        try:
            data = await run_in_threadpool(_read, chosen, name, ctx.settings.image_max_bytes)
        except ValidationError as exc:
            error = exc.message
    return await run_in_threadpool(_kept_and_used, request, ctx, data, name, fields, error)


def _read(upload: UploadFile, name: str, limit: int) -> bytes:
    return library.read_upload(upload.file, name, max_bytes=limit)


@router.post("/media/fetch")
def fetch(
    request: Request, ctx: Ctx, identity: Editor, url: Line = "", issue: Line = "",
    item_id: Line = "", alt: Line = "",
) -> Response:  # fmt: skip
    """An image from a URL (the resource's own og:image, proposed in the editor)."""
    fields = {"url": url.strip(), "issue": issue, "item_id": item_id, "alt": alt}
    data, error = None, None
    try:
        data = library.fetch(url.strip(), timeout=ctx.settings.image_fetch_timeout_seconds,
                             max_bytes=ctx.settings.image_max_bytes)  # fmt: skip
    except ValidationError as exc:
        error = exc.message
    name = url.strip().rsplit("/", 1)[-1][:200] or "image"
    return _kept_and_used(request, ctx, data, name, fields, error)


@router.post("/issues/{number:int}/items/{item_id:int}/image")
def use_image(
    request: Request, ctx: Ctx, identity: Editor, number: int, item_id: int,
    image_id: Line = "", alt: Line = "",
) -> Response:  # fmt: skip
    """A library image on the item (from the media library page)."""
    storage = storage_for(ctx.settings)

    def action(issue: Issue, session: Session) -> None:
        if not image_id.isdigit():
            raise ValidationError("choose an image from the media library")
        row = library.get_image(int(image_id), session=session)
        library.use_on_item(issue, item_id, row, alt, storage=storage, session=session)

    return change(request, ctx, number, action, anchor=f"#item-{item_id}",
                  label="put an image on an item", done="image-used")  # fmt: skip
