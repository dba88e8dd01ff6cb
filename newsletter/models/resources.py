"""The resource library: what editors curate and issues reference."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.models.base import Base, UTCDateTime, utcnow


class Resource(Base):
    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    title_key: Mapped[str] = mapped_column(String(500), index=True)
    url: Mapped[str | None] = mapped_column(String(2000))
    url_key: Mapped[str | None] = mapped_column(String(2000), unique=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    summary_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    type: Mapped[str | None] = mapped_column(String(40), index=True)
    type_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    topics_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(String(300))
    authors: Mapped[str | None] = mapped_column(String(500))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    image_alt: Mapped[str | None] = mapped_column(String(500))
    image_credit: Mapped[str | None] = mapped_column(String(500))
    call_to_action: Mapped[str | None] = mapped_column(String(300))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    origin: Mapped[str] = mapped_column(String(500), default="")
    # Link health (migration 0016): "ok", "dead" or "moved"; None until first checked.
    link_status: Mapped[str | None] = mapped_column(String(10), index=True)
    link_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    topic_rows: Mapped[list[ResourceTopic]] = relationship(
        back_populates="resource",
        cascade="all, delete-orphan",
        order_by="ResourceTopic.position",
        lazy="selectin",
    )

    @property
    def topics(self) -> list[str]:
        return [row.topic for row in self.topic_rows]

    def set_topics(self, topics: list[str]) -> None:
        """Replace the topics, keeping order and dropping repeats; unchanged rows are kept.

        Kept, not re-created: a new row for a topic the resource already has would be
        inserted before the old one is deleted and break the (resource, topic) key.
        """
        unique = list(dict.fromkeys(t.strip() for t in topics if t.strip()))
        existing = {row.topic: row for row in self.topic_rows}
        rows = [existing.get(t) or ResourceTopic(topic=t) for t in unique]
        for position, row in enumerate(rows):
            row.position = position
        self.topic_rows = rows


class ResourceTopic(Base):
    __tablename__ = "resource_topics"
    __table_args__ = (UniqueConstraint("resource_id", "topic"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(100), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    resource: Mapped[Resource] = relationship(back_populates="topic_rows")
