"""Uploaded files as files with their own names, for importers that read paths.

The form parser has already spooled each upload to a temporary file; here it
is copied a chunk at a time (never whole in memory) into the folder of the job
that will import it.

The importers (``library.parse_files``, ``service.import_csv``) take paths and
detect formats by extension, exactly as on the command line; keeping the
uploaded name (reduced to a safe basename) lets them do the same here, and
lets their errors name the file the editor chose rather than a temp path.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.datastructures import UploadFile

from newsletter.errors import ValidationError

MAX_FILES = 20
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Saved:
    path: Path
    folder: Path  # the temp folder; stripped from messages
    name: str


def safe_name(raw: str | None) -> str:
    """A basename with no path, no control characters and no surprises."""
    base = re.split(r"[\\/]", raw or "")[-1]
    cleaned = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    return cleaned[:120] or "upload"


def _save(upload: UploadFile, folder: Path, max_bytes: int) -> Saved:
    """Copy the upload (already spooled to disk by the form parser) a chunk at a time."""
    name = safe_name(upload.filename)
    folder.mkdir(parents=True)
    path = folder / name
    written = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(_COPY_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise ValidationError(f"{name} is larger than {max_bytes // (1024 * 1024)} MB")
            out.write(chunk)
    return Saved(path=path, folder=folder, name=name)


async def form_upload(
    request: Request, name: str = "files"
) -> tuple[list[UploadFile], dict[str, str]]:
    """The uploaded files and the text fields of a multipart form.

    Read here, inside the handler, rather than declared as ``File()``
    parameters: FastAPI reads declared bodies *before* running dependencies, so
    an upload in the signature would be received in full before the sign-in
    check could refuse it.
    """
    form = await request.form()  # already parsed (and cached) by the CSRF check
    files = [v for v in form.getlist(name) if isinstance(v, UploadFile)]
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return files, fields


def keep(uploads: Sequence[UploadFile], folder: Path, *, max_bytes: int) -> list[Saved]:
    """The uploads as files under ``folder`` (the job that reads them removes it)."""
    chosen = [u for u in uploads if u.filename]
    if not chosen:
        raise ValidationError("choose a file to import")
    if len(chosen) > MAX_FILES:
        raise ValidationError(f"import at most {MAX_FILES} files at a time")
    try:
        return [_save(u, folder / str(n), max_bytes) for n, u in enumerate(chosen)]
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def shown(message: str, files: Sequence[Saved]) -> str:
    """A message with every temp folder removed, so it names the uploaded file."""
    for item in files:
        message = message.replace(f"{item.folder}/", "")
    return message
