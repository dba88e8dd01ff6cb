"""Page numbers for long tables (library, recipients, subscribers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def first_shown(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_shown(self) -> int:
        return min(self.total, self.offset + self.per_page)


def paging(page: int, total: int, per_page: int = 50) -> Paging:
    """Page ``page`` of ``total`` rows, clamped so a stale link still lands on a real page."""
    last = max(1, -(-total // per_page))
    return Paging(page=min(max(1, page), last), per_page=per_page, total=total)
