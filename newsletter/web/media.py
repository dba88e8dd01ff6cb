"""Stored images, served to readers' mail clients (``media_storage = "local"``).

Names are content hashes, so a file never changes: a year-long immutable
cache header lets clients and proxies keep it.  A bucket (``"s3"``) serves its
objects itself; this route then has nothing to serve.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from newsletter.errors import NotFoundError
from newsletter.media.storage import CACHE_CONTROL, LocalStorage, storage_for
from newsletter.web.context import Ctx

router = APIRouter(include_in_schema=False)


@router.get("/media/{name}")
def image(name: str, ctx: Ctx) -> FileResponse:
    storage = storage_for(ctx.settings)
    if not isinstance(storage, LocalStorage):
        raise NotFoundError(f"no image {name[:80]!r} here: images are in the bucket")
    kind = "image/png" if name.endswith(".png") else "image/jpeg"
    return FileResponse(
        storage.path(name), media_type=kind,
        headers={"cache-control": CACHE_CONTROL, "x-content-type-options": "nosniff"},
    )  # fmt: skip
