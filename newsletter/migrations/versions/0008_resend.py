"""Campaigns remember an explicit resend; test sends are recorded for the review step.

Starting a second campaign for an issue that already went to the same
subscribers is refused unless the admin said ``--resend`` (or ticked the
confirmation in the admin); the choice is stored so that a campaign created
with it can be started later, by the scheduler too.  ``test_sends`` keeps each
test send of an issue, which the review step before a send shows.

Revision ID: 0008_resend
Revises: 0007_lean_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0008_resend"
down_revision = "0007_lean_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(
            sa.Column("allow_resend", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "test_sends",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("sent_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_test_sends"),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name="fk_test_sends_issue_id_issues", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_test_sends_issue_id", "test_sends", ["issue_id"])


def downgrade() -> None:
    op.drop_index("ix_test_sends_issue_id", table_name="test_sends")
    op.drop_table("test_sends")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("allow_resend")
