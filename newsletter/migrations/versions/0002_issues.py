"""Reserved slot for the issues tables (filled in by the work that adds them).

Revision ID: 0002_issues
Revises: 0001_resources
"""

from __future__ import annotations

revision = "0002_issues"
down_revision = "0001_resources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
