"""The admin's sequences page and the campaign form's local-time option (SQLite, in process)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from newsletter.automation import sequences
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Campaign, Sequence
from newsletter.transports.memory import MemoryMessenger
from tests.admin_helpers import (
    ADMIN,
    EDITOR,
    add_account,
    fast_hashing,
    load_issue_42,
    make_client,
    sign_in,
)
from tests.sending_helpers import FakeClock
from tests.sequence_helpers import confirmed, send_due

__all__ = ["fast_hashing"]


def test_an_admin_creates_a_sequence_adds_steps_pauses_and_sees_results(
    sqlite_db: Database, sqlite_settings: Settings, seeds_dir: Path
) -> None:
    db, settings = sqlite_db, sqlite_settings
    load_issue_42(db, settings, seeds_dir)
    add_account(db, ADMIN, "admin")
    client = sign_in(make_client(db, settings), ADMIN)
    assert 'href="/admin/sequences"' in client.get("/admin").text  # in the navigation
    refused = client.form("/admin/sequences", {"name": "Tips", "trigger": "topic:Knitting"})
    assert refused.status_code == 422 and "unknown topic &#39;Knitting&#39;" in refused.text
    made = client.form("/admin/sequences", {"name": "Welcome", "trigger": "confirmed"})
    assert made.status_code == 303
    page_url = made.headers["location"].split("?")[0]
    bad = client.form(f"{page_url}/steps", {"issue": "42", "delay": "soon"})
    assert bad.status_code == 422 and "invalid delay &#39;soon&#39;" in bad.text
    assert client.form(f"{page_url}/steps", {"issue": "42", "delay": "0"}).status_code == 303
    assert client.form(f"{page_url}/steps", {"issue": "42", "delay": "2d"}).status_code == 303
    with db.session() as session:
        seq_id = session.scalars(select(Sequence.id)).one()
    clock, mail = FakeClock(), MemoryMessenger()
    with db.session() as session:  # created on the wall clock: let triggers from now count
        session.get(Sequence, seq_id).starts_from = clock.now  # type: ignore[union-attr]
    confirmed(db, "ada@example.org", clock.now + timedelta(seconds=1))
    sequences.tick(db, settings, clock.now + timedelta(seconds=30))
    clock.now += timedelta(seconds=30)
    send_due(db, settings, mail, clock)
    detail = client.get(page_url)
    assert detail.status_code == 200
    row = detail.text.split("<tbody>")[1].split("</tr>")[0]  # step 1: queued 0, sent 1
    assert "Issue 42" in row and '<td class="num">1</td>' in row
    assert "1 active" in detail.text and "2d" in detail.text
    with db.session() as session:
        step_id = session.scalars(select(Campaign.id).where(Campaign.sequence_id == seq_id)).first()
    step_page = client.get(f"/admin/campaigns/{step_id}").text  # the step's recipients
    assert f'href="/admin/sequences/{seq_id}"' in step_page and 'id="cancel"' not in step_page
    paused = client.form(f"{page_url}/state", {"paused": "1"})
    assert paused.status_code == 303 and "Paused." in client.get(paused.headers["location"]).text
    with db.session() as session:
        assert session.get(Sequence, seq_id).status == "paused"  # type: ignore[union-attr]
        states = set(session.scalars(select(Campaign.status).where(Campaign.sequence_id == seq_id)))
    assert states == {"paused"}
    assert "Welcome" in client.get("/admin/sequences").text
    assert "Welcome" not in client.get("/admin/campaigns").text.split("New campaign")[0]
    add_account(db, EDITOR, "editor")
    editor = sign_in(make_client(db, settings), EDITOR)
    assert editor.get("/admin/sequences").status_code == 403


def test_the_campaign_form_schedules_a_local_time_send(
    sqlite_db: Database, sqlite_settings: Settings, seeds_dir: Path
) -> None:
    db, settings = sqlite_db, sqlite_settings
    load_issue_42(db, settings, seeds_dir)
    add_account(db, ADMIN, "admin")
    client = sign_in(make_client(db, settings), ADMIN)
    form = {"issue": "42", "when": "local", "at": "2030-03-28T00:00", "local_time": "09:00"}
    review = client.form("/admin/campaigns", form)
    assert review.status_code == 200 and "in each subscriber's own time zone" in review.text
    done = client.form("/admin/campaigns", {**form, "confirmed": "1"})
    assert done.status_code == 303, done.text
    with db.session() as session:
        campaign = session.scalars(select(Campaign)).one()
        assert (str(campaign.local_date), campaign.local_time) == ("2030-03-28", "09:00")
        cid = campaign.id
    shown = client.get(f"/admin/campaigns/{cid}").text
    assert "arrives at 09:00 on 2030-03-28 in each subscriber" in shown
    bad = client.form("/admin/campaigns", {**form, "local_time": "25:00"})
    assert bad.status_code == 422 and "invalid time of day" in bad.text
    both = client.form("/admin/campaigns", {**form, "subjects": ["One", "Two"]})
    assert both.status_code == 422 and "cannot be combined with a local-hour send" in both.text
