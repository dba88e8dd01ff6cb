"""Reserved slot for the subscribers tables (filled in by the work that adds them).

Revision ID: 0003_subscribers
Revises: 0002_issues
"""

from __future__ import annotations

revision = "0003_subscribers"
down_revision = "0002_issues"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
