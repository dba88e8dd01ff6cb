"""Uploaded files as temporary files with their own names, for importers that read paths.

The importers (``library.parse_files``, ``service.import_csv``) take paths and
detect formats by extension, exactly as on the command line; keeping the
uploaded name (reduced to a safe basename) lets them do the same here, and
lets their errors name the file the editor chose rather than a temp path.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.datastructures import UploadFile

from newsletter.errors import ValidationError

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 20


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


def _save(upload: UploadFile, folder: Path) -> Saved:
    name = safe_name(upload.filename)
    data = upload.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValidationError(f"{name} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    folder.mkdir()
    path = folder / name
    path.write_bytes(data)
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


@contextmanager
def saved(uploads: Sequence[UploadFile]) -> Iterator[list[Saved]]:
    """The uploads as files in a private temp folder, deleted afterwards."""
    chosen = [u for u in uploads if u.filename]
    if not chosen:
        raise ValidationError("choose a file to import")
    if len(chosen) > MAX_FILES:
        raise ValidationError(f"import at most {MAX_FILES} files at a time")
    with tempfile.TemporaryDirectory(prefix="newsletter-upload-") as tmp:
        yield [_save(u, Path(tmp) / str(n)) for n, u in enumerate(chosen)]


def shown(message: str, files: Sequence[Saved]) -> str:
    """A message with every temp folder removed, so it names the uploaded file."""
    for item in files:
        message = message.replace(f"{item.folder}/", "")
    return message
