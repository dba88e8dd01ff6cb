"""An image checked and resized to the widths the email shows it at.

The email shows an item's image in a column about 170 px wide on desktop and
up to about 440 px wide on a phone (stacked, full width below the 480 px
breakpoint); each is stored at twice that for high-density screens, never
enlarged.  Only what Pillow recognises as PNG, JPEG, GIF or WebP is accepted,
whatever the file's name or declared type says, and its pixel count is checked
from the header before anything is decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from newsletter.errors import ValidationError

EMAIL_WIDTHS = (340, 880)  # 2x the desktop column, 2x a phone's full width
FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is a mistake or a decompression bomb
JPEG_QUALITY = 82


@dataclass(frozen=True)
class Prepared:
    """The image's identity and its stored variants (width -> bytes), ready to store."""

    key: str
    width: int
    height: int
    content_type: str
    extension: str
    variants: dict[int, bytes]


def _opened(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, SyntaxError, ValueError) as exc:  # fmt: skip
        raise ValidationError(f"{name} is not an image (PNG, JPEG, GIF or WebP): {exc}") from None
    return image


def _checked(data: bytes, name: str) -> Image.Image:
    try:
        header = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise ValidationError(f"{name} is not an image (PNG, JPEG, GIF or WebP)") from None
    if header.format not in FORMATS:
        raise ValidationError(f"{name} is a {header.format} image; use PNG, JPEG, GIF or WebP")
    if header.width * header.height > MAX_PIXELS:
        raise ValidationError(
            f"{name} is {header.width}x{header.height} pixels; at most {MAX_PIXELS // 1_000_000} "
            "megapixels"
        )
    return _opened(data, name)


def _encoded(image: Image.Image, width: int, transparent: bool) -> bytes:
    copy = image.copy()
    if copy.width > width:
        height = round(copy.height * width / copy.width)
        copy = copy.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if transparent:
        copy.convert("RGBA").save(out, "PNG", optimize=True)
    else:
        copy.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()


def prepare(data: bytes, name: str) -> Prepared:
    """The variants to store; ``ValidationError`` naming the file for anything else.

    PNG and GIF with transparency stay PNG (the email's dark mode shows through);
    everything else becomes a JPEG.  The first frame of an animation is kept.
    """
    image = _checked(data, name)
    transparent = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    widths = sorted({min(w, image.width) for w in EMAIL_WIDTHS})
    return Prepared(
        key=hashlib.sha256(data).hexdigest()[:32],
        width=image.width,
        height=image.height,
        content_type="image/png" if transparent else "image/jpeg",
        extension="png" if transparent else "jpg",
        variants={w: _encoded(image, w, transparent) for w in widths},
    )


def file_name(key: str, width: int, extension: str) -> str:
    """The stored name of one variant (also the last part of its URL)."""
    return f"{key}-{width}.{extension}"
