"""The media library: images received (uploaded or fetched), stored once, put on items.

Everything is checked before anything is kept: the bytes are read to at most
``image_max_bytes`` (an upload's declared size or a server's Content-Length is
refused before reading), decoded and resized in memory, and only then written
to the storage and recorded, inside the caller's transaction together with the
item that uses the image.  A refusal is one ``ValidationError`` naming the file
or the URL; nothing of it is stored.
"""

from __future__ import annotations

from typing import BinaryIO

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.admin import drafting
from newsletter.errors import NotFoundError, ValidationError
from newsletter.media.images import Prepared, file_name, prepare
from newsletter.media.storage import MediaStorage
from newsletter.models import Issue, IssueItem, IssueSection, MediaImage

_CHUNK = 256 * 1024


def _too_big(what: str, limit: int) -> ValidationError:
    return ValidationError(f"{what} is larger than the {limit / (1024 * 1024):.0f} MB limit")


def read_upload(stream: BinaryIO, name: str, *, max_bytes: int) -> bytes:
    """The upload's bytes, refused as soon as they pass ``max_bytes``."""
    data = bytearray()
    while chunk := stream.read(_CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise _too_big(name, max_bytes)
    if not data:
        raise ValidationError(f"{name} is empty")
    return bytes(data)


def fetch(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """The image at ``url`` (http or https), or why not, in one line naming the URL."""
    if not url.lower().startswith(("http://", "https://")):
        raise ValidationError(f"image URL must start with http:// or https://, not {url[:80]!r}")
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", url, headers={"accept": "image/*"}) as answer,
        ):
            if answer.status_code != 200:
                raise ValidationError(f"image {url} answered {answer.status_code}; nothing saved")
            declared = answer.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_big(f"image {url}", max_bytes)
            data = bytearray()
            for chunk in answer.iter_bytes(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise _too_big(f"image {url}", max_bytes)
    except httpx.TimeoutException:
        raise ValidationError(
            f"image {url} did not answer within {timeout:g} s; nothing saved"
        ) from None
    except httpx.HTTPError as exc:
        raise ValidationError(f"image {url} could not be fetched ({exc}); nothing saved") from None
    return bytes(data)


def _row(prepared: Prepared, name: str, origin: str, author: str, *,
         session: Session) -> MediaImage:  # fmt: skip
    existing = session.scalar(select(MediaImage).where(MediaImage.key == prepared.key))
    if existing is not None:
        return existing
    row = MediaImage(
        key=prepared.key, name=name[:200], content_type=prepared.content_type,
        width=prepared.width, height=prepared.height, variants=sorted(prepared.variants),
        alt="", origin=origin[:2000], created_by=author,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def keep(
    data: bytes, name: str, *, origin: str, author: str, storage: MediaStorage, session: Session
) -> MediaImage:
    """Check and resize (refusing a non-image), then store every width and record the image."""
    prepared = prepare(data, name)
    row = _row(prepared, name, origin, author, session=session)
    for width, body in prepared.variants.items():
        storage.put(file_name(prepared.key, width, prepared.extension), body,
                    prepared.content_type)  # fmt: skip
    return row


def extension(row: MediaImage) -> str:
    return "png" if row.content_type == "image/png" else "jpg"


def url_for(row: MediaImage, storage: MediaStorage, width: int | None = None) -> str:
    """The stored variant for ``width`` (default: the widest, sharp on phones and desktops)."""
    chosen = width if width in row.variants else max(row.variants)
    return storage.url(file_name(row.key, chosen, extension(row)))


def list_images(*, session: Session, limit: int = 200) -> list[MediaImage]:
    return list(session.scalars(select(MediaImage).order_by(MediaImage.id.desc()).limit(limit)))


def get_image(image_id: int, *, session: Session) -> MediaImage:
    row = session.get(MediaImage, image_id)
    if row is None:
        raise NotFoundError(f"no image #{image_id} in the media library")
    return row


def use_on_section(
    issue: Issue, section_id: int, row: MediaImage, alt: str, *, storage: MediaStorage,
    session: Session,
) -> IssueSection:  # fmt: skip
    """The image as the section's banner, with this alt text (or the alt it last had)."""
    text = alt.strip() or row.alt
    if text:
        row.alt = text[:500]
    return drafting.set_section_image(issue, section_id, url_for(row, storage), text or None,
                                      session=session)  # fmt: skip


def use_on_item(
    issue: Issue, item_id: int, row: MediaImage, alt: str, *, storage: MediaStorage,
    session: Session,
) -> IssueItem:  # fmt: skip
    """The image on the item, with this alt text (or the alt it last had, or the item's own)."""
    text = alt.strip() or row.alt
    values = {"image_url": url_for(row, storage)}
    if text:
        values["image_alt"] = text
        row.alt = text[:500]
    return drafting.update_item(issue, item_id, values, session=session)
