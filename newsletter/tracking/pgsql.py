"""PostgreSQL's way of storing a drained batch: three statements over ``unnest`` of arrays.

The redirect's hits are drained a few thousand at a time; through the ORM's
or Core's executemany each row costs about 150 us of Python (binding and
adapting every parameter), which at thousands of clicks a second would take
a web process's whole core.  Here each column goes as one array literal
(``newsletter.sending.pgsql.array_literal``: a string formatted in Python,
parsed by the server), so a batch costs a few microseconds a row:

- insert the events, ``ON CONFLICT DO NOTHING``, returning the ids that were new;
- add the new ones up on the ledger rows;
- add them up per link and ledger row (``link_clicks``) and per resource
  (``resource_clicks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from newsletter.models.base import UTCDateTime
from newsletter.sending.pgsql import array_literal

INSERT_EVENTS = text(
    """
    INSERT INTO engagement_events (event_id, kind, delivery_id, campaign_id, link_id,
                                   occurred_at, machine, reason, user_agent, network, received_at)
    SELECT e.event_id, e.kind, e.delivery_id, e.campaign_id, e.link_id, e.occurred_at,
           e.machine, e.reason, e.user_agent, e.network, :now
    FROM unnest(
        CAST(:event_ids AS VARCHAR[]), CAST(:kinds AS VARCHAR[]), CAST(:deliveries AS BIGINT[]),
        CAST(:campaigns AS INTEGER[]), CAST(:links AS INTEGER[]), CAST(:ats AS TIMESTAMPTZ[]),
        CAST(:machines AS BOOLEAN[]), CAST(:reasons AS VARCHAR[]), CAST(:agents AS VARCHAR[]),
        CAST(:networks AS VARCHAR[])
    ) AS e(event_id, kind, delivery_id, campaign_id, link_id, occurred_at, machine, reason,
           user_agent, network)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
).bindparams(bindparam("now", type_=UTCDateTime))

ADD_TO_LEDGER = text(
    """
    UPDATE deliveries d
    SET opens = d.opens + s.opens, clicks = d.clicks + s.clicks,
        machine_opens = d.machine_opens + s.mopens, machine_clicks = d.machine_clicks + s.mclicks,
        opened_at = COALESCE(d.opened_at, s.opened), clicked_at = COALESCE(d.clicked_at, s.clicked)
    FROM unnest(
        CAST(:ids AS BIGINT[]), CAST(:opens AS INTEGER[]), CAST(:clicks AS INTEGER[]),
        CAST(:mopens AS INTEGER[]), CAST(:mclicks AS INTEGER[]),
        CAST(:opened AS TIMESTAMPTZ[]), CAST(:clicked AS TIMESTAMPTZ[])
    ) AS s(id, opens, clicks, mopens, mclicks, opened, clicked)
    WHERE d.id = s.id
    """
)

ADD_PER_KEY = """
    INSERT INTO {table} ({key}, delivery_id, campaign_id, human, machine, first_at, segment)
    SELECT * FROM unnest(
        CAST(:keys AS INTEGER[]), CAST(:deliveries AS BIGINT[]), CAST(:campaigns AS INTEGER[]),
        CAST(:humans AS INTEGER[]), CAST(:machines AS INTEGER[]), CAST(:firsts AS TIMESTAMPTZ[]),
        CAST(:segments AS VARCHAR[])
    )
    ON CONFLICT ({key}, delivery_id) DO UPDATE
    SET human = {table}.human + EXCLUDED.human,
        machine = {table}.machine + EXCLUDED.machine,
        first_at = LEAST({table}.first_at, EXCLUDED.first_at)
    """
PER_KEY_TABLES = {("link_clicks", "link_id"), ("resource_clicks", "resource_id")}


def _literal(values: Sequence[Any]) -> str:
    """Any column as a text array literal (ints, times, booleans and text alike).

    A drained batch is thousands of rows by ten columns, so each column is
    spelled by the fastest way for its type (``str`` of an int needs no quoting;
    the same few times, flags and user agents repeat and are spelled once).
    """
    kinds = {type(v) for v in values} - {type(None)}
    if kinds == {int}:
        return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"
    if kinds == {bool}:
        return "{" + ",".join("NULL" if v is None else ("t" if v else "f") for v in values) + "}"
    if kinds == {datetime}:
        spelled: dict[Any, str] = {}
        parts = []
        for value in values:
            part = spelled.get(value)
            if part is None:
                part = spelled[value] = "NULL" if value is None else value.isoformat()
            parts.append(part)
        return "{" + ",".join(parts) + "}"
    return array_literal([None if v is None else str(v) for v in values])


def insert_events(session: Session, events: Sequence[dict[str, Any]], now: datetime) -> set[str]:
    columns = {
        "event_ids": "event_id", "kinds": "kind", "deliveries": "delivery_id",
        "campaigns": "campaign_id", "links": "link_id", "ats": "occurred_at",
        "machines": "machine", "reasons": "reason", "agents": "user_agent", "networks": "network",
    }  # fmt: skip
    params: dict[str, Any] = {p: _literal([e[c] for e in events]) for p, c in columns.items()}
    params["now"] = now
    return set(session.execute(INSERT_EVENTS, params).scalars())


def add_to_ledger(session: Session, sums: Sequence[dict[str, Any]]) -> None:
    names = {"ids": "b_id", "opens": "b_opens", "clicks": "b_clicks", "mopens": "b_mopens",
             "mclicks": "b_mclicks", "opened": "b_opened", "clicked": "b_clicked"}  # fmt: skip
    session.execute(ADD_TO_LEDGER, {p: _literal([s[k] for s in sums]) for p, k in names.items()})


def add_per_key(session: Session, table: str, key: str, sums: Sequence[dict[str, Any]]) -> None:
    """Clicks per link (``link_clicks``) or per resource (``resource_clicks``) and recipient."""
    assert (table, key) in PER_KEY_TABLES  # names in SQL: only ours
    names = {"keys": key, "deliveries": "delivery_id", "campaigns": "campaign_id",
             "humans": "human", "machines": "machine", "firsts": "first_at",
             "segments": "segment"}  # fmt: skip
    statement = text(ADD_PER_KEY.format(table=table, key=key))
    session.execute(statement, {p: _literal([s[k] for s in sums]) for p, k in names.items()})
