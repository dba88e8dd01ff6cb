"""Where image files live: a small interface, the data folder, or an S3-compatible bucket.

Names are content hashes plus a width (``images.file_name``), so a stored file
never changes: both storages serve it with a year-long, immutable cache
header, and writing a name that exists is harmless.  ``storage_for`` reads the
settings' choice (``media_storage``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from newsletter.config import Settings
from newsletter.errors import ConfigError, NotFoundError

CACHE_CONTROL = "public, max-age=31536000, immutable"
_NAME = re.compile(r"^[0-9a-f]{32}-\d{1,5}\.(?:jpg|png)$")


def check_name(name: str) -> str:
    """Only names this module writes (no paths, no dots to climb out of the folder)."""
    if not _NAME.match(name):
        raise NotFoundError(f"no image {name[:80]!r}")
    return name


class MediaStorage(Protocol):
    """Stores image files and says where readers fetch them."""

    def put(self, name: str, data: bytes, content_type: str) -> None: ...

    def url(self, name: str) -> str:
        """The public address an email's ``<img src>`` uses."""
        ...


class LocalStorage:
    """Files under the data folder, served by the app at ``/media/<name>``."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Written to a temp file and renamed: a reader never sees half an image."""
        target = self.root / check_name(name)
        if target.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def url(self, name: str) -> str:
        return f"{self.base_url}/media/{check_name(name)}"

    def path(self, name: str) -> Path:
        """The file to serve; ``NotFoundError`` when there is none."""
        target = self.root / check_name(name)
        if not target.is_file():
            raise NotFoundError(f"no image {name!r}")
        return target


class S3Storage:
    """Objects in an S3-compatible bucket (AWS, MinIO, R2...), through boto3 when installed."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        if not settings.s3_bucket or not settings.media_public_url:
            raise ConfigError("media_storage = 's3' needs s3_bucket and media_public_url")
        self.bucket = settings.s3_bucket
        self.public_url = settings.media_public_url.rstrip("/")
        self.client = client or _boto3_client(settings)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=check_name(name), Body=data, ContentType=content_type,
            CacheControl=CACHE_CONTROL,
        )  # fmt: skip

    def url(self, name: str) -> str:
        return f"{self.public_url}/{check_name(name)}"


def _boto3_client(settings: Settings) -> Any:
    try:
        import boto3  # type: ignore[import-untyped,unused-ignore]
        from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError(
            "media_storage = 's3' needs boto3: pip install 'newsletter[s3]'"
        ) from None
    secret = settings.s3_secret_access_key
    return boto3.client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=Config(s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=30,
                      retries={"max_attempts": 2},
                      # plain checksummed PUTs that every S3-compatible server reads
                      request_checksum_calculation="when_required"),
    )  # fmt: skip


def media_dir(settings: Settings) -> Path:
    return settings.media_dir or settings.var_dir / "media"


def storage_for(settings: Settings) -> MediaStorage:
    """The storage the settings chose (built at each entry point, not a singleton)."""
    if settings.media_storage == "s3":
        return S3Storage(settings)
    return LocalStorage(media_dir(settings), settings.base_url)
