"""Subscribers in the admin: search, history, suppress, erase, CSV import and export (both backends)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import ConsentEvent, Subscriber, Suppression
from newsletter.sending import campaigns, service
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.store import Actor
from tests.admin_helpers import (
    ADMIN,
    AdminClient,
    fast_hashing,  # noqa: F401 - autouse fixture
    finished_job,
    load_issue_42,
    signed_in_client,
)
from tests.sending_helpers import add_subscribers


def _ann(db: Database, settings: Settings) -> int:
    topics = [t.name for t in settings.topics]
    with db.session() as session:
        row = subscribers.add(
            "ann.lee@example.org", session=session, actor=Actor(source="web:subscribe-form"),
            allowed_topics=topics, name="Ann Lee", topics=topics[:1], confirmed=True,
            consent_text="Yes please",
        )  # fmt: skip
        return row.id


def _client(db: Database, settings: Settings) -> AdminClient:
    with db.session() as session:
        add_subscribers(session, 30, prefix="bulk")
    return signed_in_client(db, settings, "admin")


def test_search_and_one_subscribers_history(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    ann = _ann(db, settings)
    client = _client(db, settings)
    with db.session() as session:
        cid = campaigns.create_campaign(42, session=session).id
    service.start(db, settings, cid)
    service.drain(db, settings, cid)
    listing = client.get("/admin/subscribers").text
    assert "31 in all" in listing and listing.count('href="/admin/subscribers/') >= 31
    by_name = client.get("/admin/subscribers", params={"q": "ann lee"}).text
    assert "ann.lee@example.org" in by_name and "bulk1@example.org" not in by_name
    by_status = client.get("/admin/subscribers", params={"status": "pending"}).text
    assert "No subscribers match" in by_status
    detail = client.get(f"/admin/subscribers/{ann}").text
    assert "“Yes please”" in detail and "web:subscribe-form" in detail  # consent trail
    assert "Issue 42: April 2018" in detail and "badge-accepted" in detail  # send history
    assert client.get("/admin/subscribers/99999").status_code == 404


def test_suppress_and_erase(db: Database, settings: Settings) -> None:
    ann = _ann(db, settings)
    client = _client(db, settings)
    bad = client.form(f"/admin/subscribers/{ann}/suppress", {"reason": "erased"})
    assert bad.status_code == 422
    done = client.form(f"/admin/subscribers/{ann}/suppress", {"reason": "manual",
                                                              "note": "asked by phone"})  # fmt: skip
    assert done.headers["location"].endswith("done=suppressed")
    page = client.get(f"/admin/subscribers/{ann}").text
    assert "manual since" in page and "asked by phone" in page and 'id="suppress"' not in page
    assert f"admin:{ADMIN}" in page  # the trail names the admin
    wrong = client.form(f"/admin/subscribers/{ann}/erase", {"confirm_email": "someone@else.org"})
    assert wrong.status_code == 422 and "type the subscriber" in wrong.text
    erased = client.form(
        f"/admin/subscribers/{ann}/erase", {"confirm_email": "Ann.Lee@example.org"}
    )
    assert erased.headers["location"] == "/admin/subscribers?done=erased"
    assert "only a hash remains" in client.get(erased.headers["location"]).text
    with db.session() as session:
        assert session.get(Subscriber, ann) is None
        assert session.scalar(select(Suppression.reason)) == "manual"
        assert all(e.email_hash is None or e.kind == "erase"
                   for e in session.scalars(select(ConsentEvent)))  # fmt: skip
    assert client.get(f"/admin/subscribers/{ann}").status_code == 404


def test_csv_export_and_import(db: Database, settings: Settings) -> None:
    _ann(db, settings)
    client = _client(db, settings)
    exported = client.get("/admin/subscribers/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert re.match(r'attachment; filename="subscribers-\d{4}-\d{2}-\d{2}\.csv"',
                    exported.headers["content-disposition"])  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 31 and rows[0]["email"] == "ann.lee@example.org"
    upload = (
        b"E-mail,Full name,Topics\n"
        b"new.person@example.org,New Person,Equity\n"
        b"not-an-address,Broken,\n"
        b"ann.lee@example.org,Ann L.,\n"
    )
    started = client.form("/admin/subscribers/import",
                          {"status": "pending", "consent_text": "Signed up at the fair"},
                          files={"files": ("people.csv", upload, "text/csv")})  # fmt: skip
    _state, answer = finished_job(client, started)
    assert "Added 1, updated 1, unchanged 0" in answer and "line 3:" in answer
    with db.session() as session:
        person = session.scalar(
            select(Subscriber).where(Subscriber.email == "new.person@example.org")
        )
        assert person is not None and person.status == "pending" and person.topics == ["Equity"]
    broken = client.form("/admin/subscribers/import",
                         files={"files": ("x.csv", b"name\nNo email column\n", "text/csv")})  # fmt: skip
    state, page = finished_job(client, broken)
    assert state["state"] == "failed" and "x.csv:1: no email column" in page
