"""Who is most engaged: the one place that says how engagement is measured.

Used to send warm-up allowances to the most engaged subscribers first.  Today
it counts each subscriber's opens and clicks in the last ``recent`` campaigns
(a click counts twice) from the ledger's ``opened_at``/``clicked_at``; where
human activity is told apart from machine opens and link scanners, this is
the function to point at it.
"""

from __future__ import annotations

RECENT_CAMPAIGNS = 6


def engaged(row: str) -> str:
    """SQL: the ledger row ``row`` (an alias of ``deliveries``) shows activity by a person.

    The one definition of "engaged" (warm-up order, sunset); today any open or
    click; where human activity is told apart from machine opens and link
    scanners, point this at it.
    """
    return f"({row}.opened_at IS NOT NULL OR {row}.clicked_at IS NOT NULL)"


def engagement_sql(recent: int = RECENT_CAMPAIGNS) -> str:
    """A subquery of (sid, score): subscribers with any recent activity and its weight.

    Binds ``:cid`` (the campaign being frozen, left out) and ``:recent``.
    """
    return f"""
        SELECT ed.subscriber_id AS sid,
               SUM(CASE WHEN ed.clicked_at IS NOT NULL THEN 2
                        WHEN ed.opened_at IS NOT NULL THEN 1 ELSE 0 END) AS score
        FROM deliveries ed
        WHERE ed.campaign_id IN (
            SELECT ec.id FROM campaigns ec
            WHERE ec.frozen_at IS NOT NULL AND ec.id <> :cid
            ORDER BY ec.frozen_at DESC LIMIT :recent
        )
          AND {engaged("ed")}
        GROUP BY ed.subscriber_id
    """


def engagement_params(recent: int = RECENT_CAMPAIGNS) -> dict[str, int]:
    return {"recent": recent}
