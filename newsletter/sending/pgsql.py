"""PostgreSQL: a batch is claimed in one statement and recorded in another (or the same).

``SqlStore`` runs these on its lock connection (autocommit, so each statement
is its own transaction) instead of four and five statements in session
transactions.  They do exactly what the portable code in ``sqlstore`` does, in
the same order of effects:

``CLAIM``
    pick the next due pending batch of a sending campaign (``FOR UPDATE SKIP
    LOCKED``), take its advisory lock (or claim nothing, as before), mark it
    claimed, mark its no-longer-eligible recipients skipped and return the
    batch and its eligible recipients.  The session-level advisory lock
    outlives the statement, exactly like the lock taken on the same connection
    before.

``RECORD``
    settle the ledger rows from arrays (``unnest``: one statement whatever the
    batch size), settle the batch, optionally note the campaign's outcome
    (``note_outcome``) and finish campaigns with no batch left open
    (``finish_campaigns``), emit ``campaign.sent`` for those it finished into the
    webhook outbox (``automation.webhooks.emit.CAMPAIGN_SENT_CTES``: nothing
    when no endpoint wants it), then release the batch's advisory lock.  The lock
    is released by the final ``SELECT`` over the batch UPDATE's ``RETURNING``,
    so it goes only once the batch row is locked by this statement: a worker
    recovering batches (``FOR UPDATE SKIP LOCKED``, then the advisory lock)
    can never see it free while the batch still looks in flight.

``RECORD_AND_CLAIM``
    both in one statement, for a worker that goes straight on to its next
    batch: two round trips per batch (this one and the submitting mark)
    instead of three.

All sub-statements see one snapshot, so the open-batch check for finishing
treats this batch as closed when this statement closes it.  The ledger rows
are also matched on ``batch_id`` (always true: a batch's rows keep their batch
while it is in flight) so the planner finds them through the batch index even
when statistics still describe the table before the freeze.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Row

from newsletter.automation.webhooks.outbox import CAMPAIGN_SENT_CTES
from newsletter.models.base import UTCDateTime, utcnow
from newsletter.models.sending import BatchStatus, DeliveryStatus
from newsletter.sending.segments import decode_segment
from newsletter.sending.types import Addressee, ClaimedBatch
from newsletter.transports.base import RecipientResult

# The same reasons, in the same order, as ``sqlstore._skip_reason``.
_SKIP_REASON = """
    CASE
        WHEN s.email IS NULL THEN 'subscriber erased before sending'
        WHEN EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = d.email_hash)
            THEN 'address suppressed before sending'
        WHEN s.status <> 'confirmed' THEN 'subscriber ' || s.status || ' before sending'
        WHEN s.paused_until IS NOT NULL AND s.paused_until > :now
            THEN 'subscriber paused delivery'
    END
"""

_CLAIM_CTES = f"""
    picked AS MATERIALIZED (
        SELECT b.id, c.issue_id, c.segment_topics
        FROM send_batches b JOIN campaigns c ON c.id = b.campaign_id
        WHERE b.status = 'pending' AND (b.not_before IS NULL OR b.not_before <= :now)
          AND c.status = 'sending'
        ORDER BY b.not_before IS NOT NULL, b.campaign_id, b.seq
        LIMIT 1
        FOR UPDATE OF b SKIP LOCKED
    ),
    locked AS MATERIALIZED (
        SELECT * FROM picked WHERE pg_try_advisory_lock(:lock_class, picked.id)
    ),
    claimed AS (
        UPDATE send_batches
        SET status = 'claimed', claimed_by = :worker, claimed_at = :now,
            attempts = send_batches.attempts + 1
        FROM locked WHERE send_batches.id = locked.id
        RETURNING send_batches.id, send_batches.campaign_id, send_batches.segment,
                  send_batches.attempts
    ),
    queued AS MATERIALIZED (
        SELECT d.id AS did, d.subscriber_id AS sid, s.email, s.name, d.email_hash AS eh,
               d.attempts AS tries, {_SKIP_REASON} AS reason
        FROM locked
        JOIN deliveries d ON d.batch_id = locked.id AND d.status = 'queued'
        LEFT JOIN subscribers s ON s.id = d.subscriber_id
    ),
    skipped AS (
        UPDATE deliveries SET status = 'skipped', detail = queued.reason, updated_at = :now
        FROM queued WHERE deliveries.id = queued.did AND queued.reason IS NOT NULL
        RETURNING deliveries.id
    )
"""
# A head row (kind 0) for the claimed batch, then one row (kind 1) per eligible recipient
# (its ledger id, subscriber id, attempts so far, then address, name and hash).
_CLAIM_ROWS = """
    SELECT 0 AS kind, CAST(c.id AS BIGINT) AS a, c.campaign_id AS b, c.attempts AS n,
           l.issue_id AS m, (SELECT count(*) FROM skipped) AS k,
           CAST(c.segment AS TEXT) AS t1, CAST(l.segment_topics AS TEXT) AS t2,
           CAST(NULL AS TEXT) AS t3
    FROM claimed c JOIN locked l ON l.id = c.id
    UNION ALL
    SELECT 1, q.did, q.sid, q.tries, NULL, NULL, q.email, q.name, q.eh
    FROM queued q WHERE q.reason IS NULL
"""

CLAIM = text(f"WITH {_CLAIM_CTES} {_CLAIM_ROWS} ORDER BY 1, 2").bindparams(
    bindparam("now", type_=UTCDateTime)
)

_RECORD_CTES = f"""
    v AS (
        SELECT * FROM unnest(
            CAST(:ids AS BIGINT[]), CAST(:states AS VARCHAR[]),
            CAST(:pids AS VARCHAR[]), CAST(:details AS TEXT[])
        ) AS v(id, state, pid, detail)
    ),
    settled AS (
        UPDATE deliveries d
        SET status = v.state, provider_id = v.pid, detail = v.detail, updated_at = :now,
            attempts = d.attempts + 1
        FROM v WHERE d.id = v.id AND v.state IS NOT NULL AND d.status = 'queued'
          AND d.batch_id = :batch_id
        RETURNING d.id
    ),
    bumped AS (
        UPDATE deliveries d
        SET attempts = d.attempts + 1, detail = v.detail, updated_at = :now
        FROM v WHERE d.id = v.id AND v.state IS NULL AND d.batch_id = :batch_id
        RETURNING d.id
    ),
    unparked AS (
        UPDATE deliveries SET batch_id = :batch_id
        WHERE :parked AND batch_id = -CAST(:batch_id AS INTEGER)
        RETURNING id
    ),
    batch AS (
        UPDATE send_batches
        SET status = :b_status, provider_id = :b_pid, error = :b_error,
            relay = COALESCE(CAST(:b_relay AS VARCHAR), relay),
            finished_at = CASE WHEN :b_finished THEN :now ELSE finished_at END,
            claimed_by = CASE WHEN :b_released THEN NULL ELSE claimed_by END,
            not_before = CASE WHEN :b_released THEN :b_not_before ELSE not_before END
        WHERE id = :batch_id
        RETURNING id
    ),
    fin AS MATERIALIZED (
        SELECT c.id, c.issue_id FROM campaigns c
        WHERE :finish AND c.status = 'sending' AND c.frozen_at IS NOT NULL
          AND NOT EXISTS (
            SELECT 1 FROM send_batches o
            WHERE o.campaign_id = c.id AND o.status IN ('pending', 'held', 'claimed', 'submitting')
              AND NOT (o.id = :batch_id AND :b_closed)
          )
    ),
    camp AS (
        UPDATE campaigns c
        SET consecutive_failures = CASE
                WHEN c.id = :campaign_id AND :note
                    THEN CASE WHEN :failed THEN c.consecutive_failures + 1 ELSE 0 END
                ELSE c.consecutive_failures END,
            status = CASE WHEN c.id IN (SELECT id FROM fin) AND c.status = 'sending'
                          THEN 'sent' ELSE c.status END,
            finished_at = CASE WHEN c.id IN (SELECT id FROM fin) AND c.status = 'sending'
                               THEN :now ELSE c.finished_at END,
            updated_at = :wall
        WHERE (c.id = :campaign_id AND :note)
           OR (c.id IN (SELECT id FROM fin) AND c.status = 'sending')
        RETURNING c.id, c.consecutive_failures, c.status, c.name, c.issue_id,
                  c.total_recipients, c.started_at, c.finished_at
    ),
    published AS (
        UPDATE issues SET published_at = :now
        WHERE published_at IS NULL AND id IN (SELECT issue_id FROM fin)
        RETURNING id
    ),
    {CAMPAIGN_SENT_CTES}
"""
_RECORD_PARAMS = (
    bindparam("now", type_=UTCDateTime),
    bindparam("wall", type_=UTCDateTime),
    bindparam("b_not_before", type_=UTCDateTime),
)

RECORD = text(
    f"""WITH {_RECORD_CTES}
    SELECT pg_advisory_unlock(:lock_class, batch.id),
           (SELECT consecutive_failures FROM camp WHERE camp.id = :campaign_id)
    FROM batch
    """
).bindparams(*_RECORD_PARAMS)

# Both in one statement: record a batch and claim the next (one round trip, not two).
# The row of kind -1 carries RECORD's answer; the claim's rows follow as in CLAIM.  The
# claim cannot pick the batch being recorded (its snapshot shows it submitting, never
# pending), and ``fin`` sees a batch claimed here as still pending, so a campaign only
# finishes once nothing of it is left to claim.
RECORD_AND_CLAIM = text(
    f"""WITH {_RECORD_CTES}, {_CLAIM_CTES}
    SELECT -1 AS kind,
           CAST(CASE WHEN pg_advisory_unlock(:lock_class, batch.id) THEN 1 ELSE 0 END AS BIGINT),
           (SELECT consecutive_failures FROM camp WHERE camp.id = :campaign_id),
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM batch
    UNION ALL {_CLAIM_ROWS}
    ORDER BY 1, 2
    """
).bindparams(*_RECORD_PARAMS)


# Mark a batch submitting if it is still this worker's and its campaign still sending;
# if the campaign stopped, hand the batch back (pending, unlocked) instead.  Rows held
# back by pacing or warm-up are parked (batch_id negated: in no batch in flight, so
# recovery never makes them unknown) until RECORD brings them back.  Answers
# (marked, released).
MARK_SUBMITTING = text(
    """
    WITH mine AS MATERIALIZED (
        SELECT b.id, c.status = 'sending' AS go
        FROM send_batches b JOIN campaigns c ON c.id = b.campaign_id
        WHERE b.id = :batch_id AND b.status IN ('claimed', 'submitting')
          AND b.claimed_by = :worker
        FOR UPDATE OF b
    ),
    marked AS (
        UPDATE send_batches SET status = 'submitting', submitted_at = :now
        FROM mine WHERE send_batches.id = mine.id AND mine.go
        RETURNING send_batches.id
    ),
    released AS (
        UPDATE send_batches SET status = 'pending', claimed_by = NULL
        FROM mine WHERE send_batches.id = mine.id AND NOT mine.go
        RETURNING send_batches.id
    ),
    parked AS (
        UPDATE deliveries SET batch_id = -deliveries.batch_id
        FROM mine
        WHERE :parking AND mine.go AND deliveries.batch_id = mine.id
          AND deliveries.id = ANY(CAST(:deferred AS BIGINT[])) AND deliveries.status = 'queued'
        RETURNING deliveries.id
    )
    SELECT (SELECT count(*) FROM marked) > 0,
           (SELECT bool_and(pg_advisory_unlock(:lock_class, id)) FROM released) IS NOT NULL
    """
).bindparams(bindparam("now", type_=UTCDateTime))


def claim_params(lock_class: int, worker_id: str, now: datetime) -> dict[str, Any]:
    return {"lock_class": lock_class, "worker": worker_id, "now": now}


def claimed_batch(rows: Sequence[Row[Any]]) -> ClaimedBatch | None:
    """The batch from ``CLAIM``'s rows: a head row, then its eligible recipients by ledger id."""
    if not rows:
        return None
    _kind, batch_id, campaign_id, attempts, issue_id, skipped, segment, topics, _ = rows[0]
    return ClaimedBatch(
        id=int(batch_id),
        campaign_id=campaign_id,
        issue_id=issue_id,
        segment=decode_segment(segment, json.loads(topics) if topics else []),
        attempts=attempts,
        recipients=tuple(Addressee(r[1], r[2], r[6], r[7], r[8], r[3] or 0) for r in rows[1:]),
        skipped=int(skipped),
    )


def record_params(
    *,
    batch: ClaimedBatch,
    lock_class: int,
    now: datetime,
    settled: Sequence[tuple[RecipientResult, DeliveryStatus]],
    bumped: Sequence[RecipientResult],
    outcome: dict[str, Any],
    failed: bool | None,
    finish: bool,
    parked: bool = False,
) -> dict[str, Any]:
    """Parameters for ``RECORD``; ``outcome`` is ``SqlStore._batch_outcome``'s column values."""
    ids: list[int] = []
    states: list[str | None] = []
    pids: list[str | None] = []
    details: list[str | None] = []
    for result, state in settled:
        ids.append(int(result.ref))
        states.append(state.value)
        pids.append(result.provider_id)
        details.append(result.detail[:2000] or None)
    for result in bumped:
        ids.append(int(result.ref))
        states.append(None)
        pids.append(None)
        details.append(result.detail[:2000] or None)
    status = outcome["status"]
    return {
        "ids": "{" + ",".join(map(str, ids)) + "}",
        "states": array_literal(states),
        "pids": array_literal(pids),
        "details": array_literal(details),
        "now": now,
        "wall": utcnow(),  # what the ORM's onupdate would write to campaigns.updated_at
        "batch_id": batch.id,
        "campaign_id": batch.campaign_id,
        "lock_class": lock_class,
        "b_status": str(status),
        "b_pid": outcome["provider_id"],
        "b_error": outcome["error"],
        "b_relay": outcome.get("relay"),
        "b_finished": "finished_at" in outcome,
        "b_released": "not_before" in outcome,
        "b_not_before": outcome.get("not_before"),
        "b_closed": status in (BatchStatus.DONE, BatchStatus.UNKNOWN),
        "parked": parked,
        "note": failed is not None,
        "failed": bool(failed),
        "finish": finish,
    }


def array_literal(values: Sequence[str | None]) -> str:
    """A PostgreSQL array literal of text values, for ``CAST(:param AS ...[])``.

    psycopg adapts a Python list element by element in Python (about 3 ms for
    a thousand strings, a tenth of a batch's whole cost); one string formatted
    here costs microseconds, since a batch repeats the same few states,
    provider ids and details.  Every element is quoted, so only ``"`` and
    ``\\`` need escaping; ``None`` becomes ``NULL``.
    """
    quoted: dict[str | None, str] = {None: "NULL"}
    parts = []
    for value in values:
        part = quoted.get(value)
        if part is None:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')  # type: ignore[union-attr]
            part = quoted[value] = f'"{escaped}"'
        parts.append(part)
    return "{" + ",".join(parts) + "}"
