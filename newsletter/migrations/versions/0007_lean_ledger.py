"""A leaner ledger: the indexes and foreign keys the freeze and the record step pay for per row.

Freezing a million-recipient audience writes a million ``deliveries`` rows in
one statement, and recording each batch rewrites them.  ``EXPLAIN ANALYZE`` of
the 1M freeze on PostgreSQL (BENCHMARKS.md) showed where the time went:

* the ``email_hash`` index: random insertions into a 64-character key, about
  6 of 28 seconds.  The only reader is "what did we send to this address?"
  (``history.sends_for``); for a subscriber who still exists it goes by
  ``subscriber_id``, so only rows whose subscriber was erased need the hash:
  a partial index ``WHERE subscriber_id IS NULL`` that no freeze ever writes.
* the ``provider_id`` index (no reader), ``(campaign_id, status)`` (the unique
  ``(campaign_id, subscriber_id)`` index serves the campaign's rows) and
  ``status`` inside the batch index: every ledger update changed an indexed
  column, so none could be a heap-only update.
* the foreign keys to ``campaigns`` and ``send_batches``: one trigger call
  per row each (about 3.6 s apiece at 1M).  Both are written by the freeze
  statement itself from the campaign it gated and the batches it inserted,
  neither campaigns nor batches are ever deleted, so the check can never
  fail; the key to ``subscribers`` stays (erasure relies on its SET NULL).

Revision ID: 0007_lean_ledger
Revises: 0006_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_lean_ledger"
down_revision = "0006_accounts"
branch_labels = None
depends_on = None

ERASED = sa.text("subscriber_id IS NULL")


def upgrade() -> None:
    op.drop_index("ix_deliveries_provider_id", table_name="deliveries")
    op.drop_index("ix_deliveries_campaign_status", table_name="deliveries")
    op.drop_index("ix_deliveries_email_hash", table_name="deliveries")
    op.drop_index("ix_deliveries_batch", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:  # SQLite rebuilds the table
        batch.drop_constraint("fk_deliveries_campaign_id_campaigns", type_="foreignkey")
        batch.drop_constraint("fk_deliveries_batch_id_send_batches", type_="foreignkey")
    op.create_index("ix_deliveries_batch", "deliveries", ["batch_id"])
    op.create_index(
        "ix_deliveries_erased_hash",
        "deliveries",
        ["email_hash"],
        postgresql_where=ERASED,
        sqlite_where=ERASED,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_erased_hash", table_name="deliveries")
    op.drop_index("ix_deliveries_batch", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key(
            "fk_deliveries_batch_id_send_batches",
            "send_batches",
            ["batch_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_foreign_key(
            "fk_deliveries_campaign_id_campaigns",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_index("ix_deliveries_batch", "deliveries", ["batch_id", "status"])
    op.create_index("ix_deliveries_email_hash", "deliveries", ["email_hash"])
    op.create_index("ix_deliveries_campaign_status", "deliveries", ["campaign_id", "status"])
    op.create_index("ix_deliveries_provider_id", "deliveries", ["provider_id"])
