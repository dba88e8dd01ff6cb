"""Recurring schedules and their occurrences.

One-off sends use ``campaigns.scheduled_at`` (0004).  APScheduler's own job
table (``apscheduler_jobs``) is created by its ``SQLAlchemyJobStore`` when the
leading scheduler starts; it holds only wake-up jobs, never the truth.

Revision ID: 0005_scheduling
Revises: 0004_sending
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.models.base import UTCDateTime

revision = "0005_scheduling"
down_revision = "0004_sending"
branch_labels = None
depends_on = None


def _schedules() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rule", sa.JSON, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", UTCDateTime),
        sa.Column("last_run_at", UTCDateTime),
        sa.Column("last_result", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_index("ix_schedules_next_run_at", "schedules", ["next_run_at"])


def _runs() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("schedule_id", sa.Integer, nullable=False),
        sa.Column("occurrence_at", UTCDateTime, nullable=False),
        sa.Column("campaign_id", sa.Integer),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_runs"),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], ondelete="CASCADE",
            name="fk_schedule_runs_schedule_id_schedules",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], ondelete="SET NULL",
            name="fk_schedule_runs_campaign_id_campaigns",
        ),
        sa.UniqueConstraint(
            "schedule_id", "occurrence_at", name="uq_schedule_runs_schedule_id"
        ),
    )
    op.create_index("ix_schedule_runs_campaign_id", "schedule_runs", ["campaign_id"])


def upgrade() -> None:
    _schedules()
    _runs()


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("schedules")
