"""Reserved slot for the scheduling tables (filled in by the work that adds them).

Revision ID: 0005_scheduling
Revises: 0004_sending
"""

from __future__ import annotations

revision = "0005_scheduling"
down_revision = "0004_sending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
