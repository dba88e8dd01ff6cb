"""Reserved slot for the sending tables (filled in by the work that adds them).

Revision ID: 0004_sending
Revises: 0003_subscribers
"""

from __future__ import annotations

revision = "0004_sending"
down_revision = "0003_subscribers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
