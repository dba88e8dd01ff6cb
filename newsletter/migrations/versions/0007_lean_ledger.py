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
* the three foreign keys: one trigger call per row each, 3.6-4.3 s apiece at
  1M (the one to ``subscribers`` also locks every subscriber row).  The
  freeze writes all three from rows it reads or inserts in the same
  statement; campaigns and batches are never deleted; the one thing the key
  to ``subscribers`` did, SET NULL when an erasure deletes the subscriber,
  ``subscribers.service.erase`` now does itself, ordered against running
  freezes by an advisory lock (``db.lock_audience``).

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
        batch.drop_constraint("fk_deliveries_subscriber_id_subscribers", type_="foreignkey")
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
            "fk_deliveries_subscriber_id_subscribers",
            "subscribers",
            ["subscriber_id"],
            ["id"],
            ondelete="SET NULL",
        )
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
