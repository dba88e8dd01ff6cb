"""Images in the admin: upload or fetch one for an item, and the media library page to reuse them.

The upload path has its own body limit (``image_max_bytes``, enforced while
the body streams in: a 30 MB file is refused before it is read), and every
refusal is answered in the editor as one line: nothing is stored from a file
or URL that is refused (``newsletter.media.library``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from newsletter.admin import drafting, uploads
from newsletter.admin.access import Editor, editor_router, page
from newsletter.admin.routes.issues import author, change
from newsletter.errors import NotFoundError, ValidationError
from newsletter.issues import store
from newsletter.media import library
from newsletter.media.images import EMAIL_WIDTHS
from newsletter.media.storage import MediaStorage, storage_for
from newsletter.models import Issue, MediaImage
from newsletter.web.context import Ctx, WebContext

router = editor_router()
UPLOAD_PATH = "/admin/media/upload"
Line = Annotated[str, Form(max_length=2_000)]


@dataclass(frozen=True)
class Target:
    """Where an image goes: an item or a section of an issue."""

    number: int
    kind: str  # "item" or "section"
    id: int

    @property
    def anchor(self) -> str:
        return f"#{self.kind}-{self.id}"

    def use(self, issue: Issue, row: MediaImage, alt: str, storage: MediaStorage,
            session: Session) -> None:  # fmt: skip
        put = library.use_on_item if self.kind == "item" else library.use_on_section
        put(issue, self.id, row, alt, storage=storage, session=session)


def _target(fields: dict[str, str]) -> Target | None:
    """The issue and the item or section the image is for (none: the library alone)."""
    number = fields.get("issue", "")
    for kind in ("item", "section"):
        given = fields.get(f"{kind}_id", "")
        if number.isdigit() and given.isdigit():
            return Target(int(number), kind, int(given))
    return None


def _library_page(
    request: Request, ctx: WebContext, *, target: Target | None = None,
    error: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    storage = storage_for(ctx.settings)
    with ctx.db.session() as session:
        rows = library.list_images(session=session)
        images = [(row, library.url_for(row, storage, min(row.variants))) for row in rows]
        title = store.get_issue(target.number, session=session).title if target else ""
        return page(request, "media/library.html.j2", status_code, images=images,
                    target=target, issue_title=title, error=error, widths=EMAIL_WIDTHS,
                    image_max_mb=ctx.settings.image_max_bytes // (1024 * 1024))  # fmt: skip


@router.get("/media")
def media_page(
    request: Request, ctx: Ctx, identity: Editor,
    issue: Annotated[int | None, Query(ge=1)] = None,
    item: Annotated[int | None, Query(ge=1)] = None,
    section: Annotated[int | None, Query(ge=1)] = None,
) -> Response:  # fmt: skip
    """Every stored image, newest first; with ``issue`` and an item or section, to put on it."""
    fields = {"issue": str(issue or ""), "item_id": str(item or ""),
              "section_id": str(section or "")}  # fmt: skip
    return _library_page(request, ctx, target=_target(fields))


def _kept_and_used(
    request: Request, ctx: WebContext, data: bytes | None, name: str, fields: dict[str, str],
    error: str | None,
) -> Response:  # fmt: skip
    """Store the image (and put it on the item or section) in one transaction, or say why not."""
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
                row = keep(session)
                row.alt = fields.get("alt", "").strip()[:500] or row.alt
        except ValidationError as exc:
            return _library_page(request, ctx, error=exc.message, status_code=422)
        return RedirectResponse("/admin/media?done=image-stored", status_code=303)

    def action(issue: Issue, session: Session) -> None:
        target.use(issue, keep(session), fields.get("alt", ""), storage, session)

    return change(request, ctx, target.number, action, anchor=target.anchor,
                  label=f"put an image on a {target.kind}", done="image-used")  # fmt: skip


@router.post("/media/upload")
async def upload(request: Request, ctx: Ctx, identity: Editor) -> Response:
    """One image file, for an item or section (``issue`` and ``item_id`` or ``section_id``
    fields) or for the library alone."""
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
    item_id: Line = "", section_id: Line = "", alt: Line = "",
) -> Response:  # fmt: skip
    """An image from a URL (the resource's own image_url, proposed in the editor)."""
    fields = {"url": url.strip(), "issue": issue, "item_id": item_id, "section_id": section_id,
              "alt": alt}  # fmt: skip
    data, error = None, None
    try:
        data = library.fetch(url.strip(), timeout=ctx.settings.image_fetch_timeout_seconds,
                             max_bytes=ctx.settings.image_max_bytes)  # fmt: skip
    except ValidationError as exc:
        error = exc.message
    name = url.strip().rsplit("/", 1)[-1][:200] or "image"
    return _kept_and_used(request, ctx, data, name, fields, error)


@router.post("/issues/{number:int}/{kind:str}/{target_id:int}/image")
def use_image(
    request: Request, ctx: Ctx, identity: Editor, number: int, kind: str, target_id: int,
    image_id: Line = "", alt: Line = "",
) -> Response:  # fmt: skip
    """A library image on an item or a section (``kind``: items, sections)."""
    if kind not in ("items", "sections"):
        raise NotFoundError(f"no {kind[:40]!r} in an issue: items or sections")
    target = Target(number, kind.removesuffix("s"), target_id)
    storage = storage_for(ctx.settings)

    def action(issue: Issue, session: Session) -> None:
        if not image_id.isdigit():
            raise ValidationError("choose an image from the media library")
        target.use(issue, library.get_image(int(image_id), session=session), alt, storage,
                   session)  # fmt: skip

    return change(request, ctx, number, action, anchor=target.anchor,
                  label=f"put an image on a {target.kind}", done="image-used")  # fmt: skip


@router.post("/issues/{number:int}/sections/{section_id:int}/image/remove")
def remove_section_image(
    request: Request, ctx: Ctx, identity: Editor, number: int, section_id: int
) -> Response:
    return change(
        request, ctx, number,
        lambda issue, s: drafting.set_section_image(issue, section_id, None, None, session=s),
        anchor=f"#section-{section_id}", label="removed a section's image",
    )  # fmt: skip
