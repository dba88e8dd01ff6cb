"""What editing keeps beside an issue: uploaded images and a revision per saved change.

An image row is the upload's identity (a hash of its bytes, so the same file
uploaded twice is one row) and the widths it was resized to; the files
themselves live in a ``newsletter.media`` storage (the data folder or a
bucket).  A revision row is the issue's whole source (the YAML an export
writes) after one change, so a diff is two texts and a restore is an import.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.models.base import Base, UTCDateTime, utcnow


class MediaImage(Base):
    __tablename__ = "media_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the original, cut
    name: Mapped[str] = mapped_column(String(200))  # the uploaded file's name, for people
    content_type: Mapped[str] = mapped_column(String(40))  # of the stored variants
    width: Mapped[int] = mapped_column(Integer)  # of the original
    height: Mapped[int] = mapped_column(Integer)
    variants: Mapped[list[int]] = mapped_column(JSON, default=list)  # stored widths, ascending
    alt: Mapped[str] = mapped_column(String(500), default="")  # last alt text used with it
    origin: Mapped[str] = mapped_column(String(2000), default="")  # "upload" or the source URL
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IssueRevision(Base):
    __tablename__ = "issue_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(300))  # what changed ("moved an item", "undo")
    source: Mapped[str] = mapped_column(Text)  # the issue's YAML after the change
    author: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
