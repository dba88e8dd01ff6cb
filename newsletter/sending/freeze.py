"""Audience freeze and batch assignment, set-based so a million recipients take three statements.

Runs inside the caller's transaction: a crash mid-freeze rolls back to a
campaign that was never started, so starting it again is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from newsletter.models.base import UTCDateTime
from newsletter.models.sending import SendBatch

NUMBERED = """
    SELECT id AS did, segment AS seg,
           (row_number() OVER (PARTITION BY segment ORDER BY id) - 1) / CAST(:size AS INTEGER)
             AS chunk
    FROM deliveries
    WHERE campaign_id = :cid AND batch_id IS NULL AND status = 'queued'
"""

INSERT_BATCHES = f"""
    INSERT INTO send_batches (campaign_id, seq, segment, chunk, status, size, attempts)
    SELECT :cid, CAST(:offset AS INTEGER) + row_number() OVER (ORDER BY seg, chunk),
           seg, chunk, 'pending', count(*), 0
    FROM ({NUMBERED}) AS n
    GROUP BY seg, chunk
"""

ASSIGN_BATCHES = f"""
    UPDATE deliveries SET batch_id = b.id
    FROM ({NUMBERED}) AS n, send_batches AS b
    WHERE deliveries.id = n.did AND b.campaign_id = :cid AND b.segment = n.seg
      AND b.chunk = n.chunk AND b.seq > :offset
"""


def _mask_sql(universe: Sequence[str], params: dict[str, Any]) -> str:
    if not universe:
        return "0"
    whens = []
    for index, topic in enumerate(universe):
        params[f"t{index}"] = topic
        whens.append(f"WHEN :t{index} THEN CAST({1 << index} AS BIGINT)")
    return (
        "COALESCE((SELECT SUM(CASE st.topic " + " ".join(whens) + " ELSE 0 END) "
        "FROM subscriber_topics st WHERE st.subscriber_id = s.id), 0)"
    )


def _filter_sql(topics: Sequence[str], params: dict[str, Any]) -> str:
    if not topics:
        return ""
    names = []
    for index, topic in enumerate(topics):
        params[f"f{index}"] = topic
        names.append(f":f{index}")
    return (
        " AND EXISTS (SELECT 1 FROM subscriber_topics ft WHERE ft.subscriber_id = s.id"
        f" AND ft.topic IN ({', '.join(names)}))"
    )


def insert_audience(
    campaign_id: int,
    *,
    session: Session,
    universe: Sequence[str],
    topics: Sequence[str],
    now: datetime,
) -> int:
    """Write one queued ledger row per eligible subscriber; returns how many."""
    params: dict[str, Any] = {"cid": campaign_id, "now": now}
    sql = f"""
        INSERT INTO deliveries
            (campaign_id, subscriber_id, email_hash, segment, status, attempts, opens, clicks)
        SELECT :cid, s.id, s.email_hash, CAST({_mask_sql(universe, params)} AS VARCHAR(40)),
               'queued', 0, 0, 0
        FROM subscribers s
        WHERE s.status = 'confirmed'
          AND (s.paused_until IS NULL OR s.paused_until <= :now)
          AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)
          {_filter_sql(topics, params)}
        ORDER BY s.id
    """
    statement = text(sql).bindparams(bindparam("now", type_=UTCDateTime))
    result: Any = session.execute(statement, params)
    return int(result.rowcount or 0)


def assign_batches(campaign_id: int, *, session: Session, size: int) -> int:
    """Group unbatched queued rows into batches of ``size`` within one segment each."""
    offset = session.scalar(
        select(func.coalesce(func.max(SendBatch.seq), 0)).where(
            SendBatch.campaign_id == campaign_id
        )
    )
    params = {"cid": campaign_id, "size": size, "offset": int(offset or 0)}
    created: Any = session.execute(text(INSERT_BATCHES), params)
    session.execute(text(ASSIGN_BATCHES), params)
    return int(created.rowcount or 0)
