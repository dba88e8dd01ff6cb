"""What the templates need from settings, as a small hashable value.

Rendering takes a ``Theme`` rather than ``Settings`` so it stays pure and the
render cache can key on it; ``Theme.from_settings`` is the one bridge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.config import Settings


@dataclass(frozen=True)
class Theme:
    organisation: str = "KnowledgeWorks"
    postal_address: str = "1515 Central Parkway, Suite 400, Cincinnati, OH 45202, USA"
    base_url: str = "http://127.0.0.1:8000"
    list_id: str = "newsletter.example.org"
    logo_url: str | None = None
    tagline: str = "Resources for personalized, student-centered learning"
    template_dir: Path | None = None  # overrides templates/email/* one file at a time
    brand_color: str = "#0d4a6b"
    accent_color: str = "#e07a1f"  # the rule under the header and headings: decoration only
    heading_color: str = "#b3540e"  # section headings: the accent darkened to 5:1 on white
    ink_color: str = "#1f2a33"
    muted_color: str = "#5b6b78"
    page_color: str = "#eef2f5"
    card_color: str = "#ffffff"
    font_stack: str = "Helvetica Neue, Helvetica, Arial, sans-serif"
    # Dark mode (prefers-color-scheme and Outlook.com's data-ogsc/ogsb): every text colour
    # keeps at least 4.5:1 on its dark background (axe checks both modes in the tests).
    dark_page_color: str = "#11171c"
    dark_card_color: str = "#1b2228"
    dark_ink_color: str = "#e3e9ee"
    dark_muted_color: str = "#a9b6c1"
    dark_link_color: str = "#7cc4ea"
    dark_heading_color: str = "#f0a35e"

    @classmethod
    def from_settings(cls, settings: Settings) -> Theme:
        return cls(
            organisation=settings.organisation,
            postal_address=settings.postal_address,
            base_url=settings.base_url.rstrip("/"),
            list_id=settings.list_id,
            logo_url=settings.logo_url,
            template_dir=settings.template_dir,
        )

    @property
    def subscribe_url(self) -> str:
        return f"{self.base_url}/"
