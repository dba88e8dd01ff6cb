"""Issues: numbered, dated editions made of ordered sections of items.

An item either references a library resource (its fields are the *overrides*
an editor chose; ``None`` means "use the resource's value") or is a
free-standing article (title, byline, body).  Storing overrides rather than
copies keeps later library corrections flowing into unsent issues, and lets
``newsletter issue export`` write back exactly what the editor typed.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.models.base import Base, UTCDateTime, utcnow


class IssueStatus(StrEnum):
    DRAFT = "draft"
    READY = "ready"
    ARCHIVED = "archived"


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (CheckConstraint("status IN ('draft', 'ready', 'archived')", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    issue_date: Mapped[date] = mapped_column(Date)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    intro_md: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=IssueStatus.DRAFT)
    # Set by the sending code when the issue first goes out; content is frozen after.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def state(self) -> str:
        """What editors and admins see: 'sent' once a campaign sent it, else the status.

        ``status`` stays the editor's workflow value (draft, ready, archived); being
        sent is a fact about campaigns, recorded in ``published_at``.
        """
        if self.published_at is not None and self.status != IssueStatus.ARCHIVED:
            return "sent"
        return self.status

    sections: Mapped[list[IssueSection]] = relationship(
        back_populates="issue",
        cascade="all, delete-orphan",
        order_by="IssueSection.position",
        lazy="selectin",
    )


class IssueSection(Base):
    __tablename__ = "issue_sections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    heading: Mapped[str] = mapped_column(String(300))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A banner under the section's heading (an uploaded image, usually); alt describes it.
    image_url: Mapped[str | None] = mapped_column(String(2000))
    image_alt: Mapped[str | None] = mapped_column(String(500))

    issue: Mapped[Issue] = relationship(back_populates="sections")
    items: Mapped[list[IssueItem]] = relationship(
        back_populates="section",
        cascade="all, delete-orphan",
        order_by="IssueItem.position",
        lazy="selectin",
    )


class IssueItem(Base):
    __tablename__ = "issue_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    section_id: Mapped[int] = mapped_column(
        ForeignKey("issue_sections.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    # RESTRICT: a resource that an issue shows cannot silently vanish from it.
    resource_id: Mapped[int | None] = mapped_column(
        ForeignKey("resources.id", ondelete="RESTRICT"), index=True
    )
    title: Mapped[str | None] = mapped_column(String(500))
    byline: Mapped[str | None] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(String(2000))
    blurb: Mapped[str | None] = mapped_column(Text)
    body_md: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(2000))
    image_alt: Mapped[str | None] = mapped_column(String(500))
    image_caption: Mapped[str | None] = mapped_column(String(500))
    image_credit: Mapped[str | None] = mapped_column(String(500))
    cta_text: Mapped[str | None] = mapped_column(String(300))
    cta_url: Mapped[str | None] = mapped_column(String(2000))

    section: Mapped[IssueSection] = relationship(back_populates="items")
