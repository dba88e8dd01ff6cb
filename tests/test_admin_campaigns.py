"""Sending from the admin: start, schedule, pause, resume, cancel, retry, progress and the report.

Both backends.  Sends are driven in-process with ``service.drain``; the
per-recipient ledger, not the admin, decides who got what.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from newsletter.admin import reports
from newsletter.admin.charts import Timeline, axis_top, line_chart
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Campaign, Delivery
from newsletter.sending import campaigns, service
from tests.admin_helpers import (
    AdminClient,
    fast_hashing,  # noqa: F401 - autouse fixture
    load_issue_42,
    signed_in_client,
)
from tests.sending_helpers import add_subscribers, make_issue


def _admin(db: Database, settings: Settings, seeds: Path, subscribers: int = 12) -> AdminClient:
    load_issue_42(db, settings, seeds)
    with db.session() as session:
        add_subscribers(session, subscribers)
    return signed_in_client(db, settings, "admin")


def _campaign_id(location: str) -> int:
    found = re.match(r"/admin/campaigns/(\d+)", location)
    assert found, location
    return int(found.group(1))


def test_start_now_progress_drain_and_report(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    client = _admin(db, settings, seeds_dir, subscribers=55)
    form = {"issue": "42", "when": "now", "name": "April"}
    review = client.form("/admin/campaigns", form)  # the review step comes first
    assert review.status_code == 200 and "Send to 55 subscribers now" in review.text
    assert "Preflight passed" in review.text and "Issue 42: ESSA plans" in review.text
    with db.session() as session:
        assert session.scalar(select(Campaign.id)) is None  # reviewing creates nothing
    created = client.form("/admin/campaigns", {**form, "confirmed": "1"})
    assert created.status_code == 303 and created.headers["location"].endswith("?done=started")
    cid = _campaign_id(created.headers["location"])
    before = client.get(f"/admin/api/campaigns/{cid}/progress").json()
    assert before == {
        "status": "sending", "total": 55, "done": 0, "queued": 55, "percent": 0.0,
        "counts": {"queued": 55}, "finished": False, "reason": None, "complained": 0,
    }  # fmt: skip
    page = client.get(f"/admin/campaigns/{cid}").text
    assert 'data-progress-url="/admin/api/campaigns/' in page and 'id="pause"' in page
    service.drain(db, settings, cid)
    after = client.get(f"/admin/api/campaigns/{cid}/progress").json()
    assert (after["status"], after["done"], after["percent"], after["finished"]) == (
        "sent",
        55,
        100.0,
        True,
    )
    report = client.get(f"/admin/campaigns/{cid}").text
    assert 'data-count="accepted">55<' in report and "svg" in report and "Page 1 of 2" in report
    second = client.get(f"/admin/campaigns/{cid}", params={"page": 2}).text
    assert second.count('href="/admin/subscribers/') == 5
    found = client.get(f"/admin/campaigns/{cid}", params={"q": "user1", "state": "accepted"}).text
    assert "user1@example.org" in found and "user2@example.org" not in found
    assert "user10@example.org" in found and "No recipient matches" not in found
    assert (
        "No recipient matches" in client.get(f"/admin/campaigns/{cid}", params={"q": "100%_"}).text
    )  # wildcards are literal


def test_schedule_reschedule_and_cancel(db: Database, settings: Settings, seeds_dir: Path) -> None:
    load_issue_42(db, settings, seeds_dir)
    new_york = settings.model_copy(update={"timezone": "America/New_York"})
    client = signed_in_client(db, new_york, "admin")
    later = client.form("/admin/campaigns", {"issue": "42", "when": "later", "confirmed": "1",
                                              "at": "2099-04-03T09:00", "topics": ["Equity"]})  # fmt: skip
    assert later.status_code == 303 and later.headers["location"].endswith("done=scheduled")
    cid = _campaign_id(later.headers["location"])
    with db.session() as session:
        campaign = campaigns.get_campaign(cid, session=session)
        assert campaign.status == "scheduled" and campaign.topics == ["Equity"]
        assert campaign.scheduled_at == datetime(2099, 4, 3, 13, 0, tzinfo=UTC)  # 09:00 EDT
    listing = client.get("/admin/campaigns").text
    assert "due 2099-04-03 09:00 EDT" in listing
    past = client.form(
        "/admin/campaigns", {"issue": "42", "when": "later", "at": "2001-01-01T09:00"}
    )
    assert past.status_code == 422 and "in the past" in past.text
    unknown = client.form("/admin/campaigns", {"issue": "42", "when": "now", "topics": ["Nope"]})
    assert unknown.status_code == 422 and "unknown topic" in unknown.text
    moved = client.form(f"/admin/campaigns/{cid}/reschedule", {"at": "2099-05-01 10:30"})
    assert moved.status_code == 303
    with db.session() as session:
        due = campaigns.get_campaign(cid, session=session).scheduled_at
        assert due == datetime(2099, 5, 1, 14, 30, tzinfo=UTC)
    assert client.form(f"/admin/campaigns/{cid}/cancel").status_code == 303
    refused = client.form(f"/admin/campaigns/{cid}/pause")
    assert refused.status_code == 409 and "it is cancelled" in refused.text


def test_a_failed_preflight_starts_nothing(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    broken = settings.model_copy(update={"postal_address": ""})
    client = signed_in_client(db, broken, "admin")
    review = client.form("/admin/campaigns", {"issue": "42", "when": "now"})
    assert "This cannot be sent yet" in review.text and "no postal address" in review.text
    assert 'id="confirm-send"' not in review.text
    answer = client.form("/admin/campaigns", {"issue": "42", "when": "now", "confirmed": "1"})
    assert answer.status_code == 422 and "Preflight failed; nothing was sent" in answer.text
    assert "no postal address" in answer.text
    with db.session() as session:
        assert session.scalars(select(Campaign.status)).all() == ["draft"]
        assert session.scalar(select(Delivery.id)) is None


def test_pause_resume_retry_and_cancel(db: Database, settings: Settings, seeds_dir: Path) -> None:
    client = _admin(db, settings, seeds_dir, subscribers=6)
    started = client.form("/admin/campaigns", {"issue": "42", "confirmed": "1"})
    cid = _campaign_id(started.headers["location"])
    assert client.form(f"/admin/campaigns/{cid}/pause").status_code == 303
    assert 'id="resume"' in client.get(f"/admin/campaigns/{cid}").text
    assert client.get(f"/admin/api/campaigns/{cid}/progress").json()["status"] == "paused"
    assert client.form(f"/admin/campaigns/{cid}/resume").status_code == 303
    service.drain(db, settings, cid)
    with db.session() as session:  # two recipients failed at the provider
        first_two = select(Delivery.id).where(Delivery.campaign_id == cid).limit(2)
        session.execute(
            update(Delivery).where(Delivery.id.in_(first_two.scalar_subquery()))
            .values(status="failed", detail="550 5.1.1 mailbox unavailable")
        )  # fmt: skip
    page = client.get(f"/admin/campaigns/{cid}").text
    assert "550 5.1.1 mailbox unavailable" in page and "Retry 2 failed" in page
    assert client.form(f"/admin/campaigns/{cid}/retry").status_code == 303
    assert client.get(f"/admin/api/campaigns/{cid}/progress").json()["queued"] == 2
    assert client.form(f"/admin/campaigns/{cid}/cancel").status_code == 303
    with db.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "cancelled"
    again = client.form(f"/admin/campaigns/{cid}/start")
    assert again.status_code == 409 and "it is cancelled" in again.text


def test_timeline_buckets_deliveries_opens_and_clicks(db: Database) -> None:
    start = datetime(2026, 4, 3, 13, 0, tzinfo=UTC)
    with db.session() as session:
        make_issue(session, 42)
        ids = add_subscribers(session, 6)
        cid = campaigns.create_campaign(42, session=session).id
        assert reports.timeline(session, cid) is None  # nothing happened yet
        for n, subscriber_id in enumerate(ids):
            session.add(Delivery(
                campaign_id=cid, subscriber_id=subscriber_id, email_hash=f"{n:064d}",
                status="delivered", updated_at=start, delivered_at=start + timedelta(minutes=n),
                opened_at=start + timedelta(minutes=30 + n) if n % 2 else None,
                clicked_at=start + timedelta(minutes=59) if n == 5 else None,
            ))  # fmt: skip
        session.flush()
        timeline = reports.timeline(session, cid)
    assert timeline is not None
    assert timeline.start == start and timeline.step == timedelta(minutes=1)
    assert timeline.buckets == 60
    assert sum(timeline.series["sent"]) == 6 and timeline.series["sent"][0] == 6
    assert timeline.series["delivered"][:6] == [1] * 6
    assert [i for i, c in enumerate(timeline.series["opened"]) if c] == [31, 33, 35]
    assert timeline.series["clicked"][59] == 1
    assert timeline.cumulative()["opened"][-1] == 3


def test_line_chart_is_escaped_accessible_svg() -> None:
    start = datetime(2026, 4, 3, 13, 0, tzinfo=UTC)
    timeline = Timeline(start, timedelta(minutes=5), {"sent": [4, 0, 2], "opened": [0, 1, 1]})
    svg = str(line_chart(timeline, tz=ZoneInfo("America/New_York"), title="<b>Chart</b>"))
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert 'role="img"' in svg and '<title id="chart-title">&lt;b&gt;Chart&lt;/b&gt;' in svg
    assert "Cumulative recipients over time: sent 6, opened 2." in svg
    assert ">09:00<" in svg and "style=" not in svg  # local time; no inline styles (CSP)
    assert [axis_top(v) for v in (1, 6, 24, 55, 1000)] == [4, 8, 40, 80, 1000]
    assert timeline.rows() == [(start, [4, 0]), (start + timedelta(minutes=5), [0, 1]),
                               (start + timedelta(minutes=10), [2, 1])]  # fmt: skip
    single = line_chart(Timeline(start, timedelta(minutes=1), {"sent": [3]}), tz=UTC)
    assert "<circle" in str(single)


def test_a_guard_pause_shows_its_reason_and_complaints_and_an_admin_resumes(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    from newsletter.bounces.apply import BounceProcessor
    from newsletter.bounces.verp import Verp
    from newsletter.testing.bounce_mail import arf

    client = _admin(db, settings, seeds_dir, subscribers=20)
    created = client.form(
        "/admin/campaigns", {"issue": "42", "when": "now", "name": "April", "confirmed": "1"}
    )
    cid = _campaign_id(created.headers["location"])
    service.drain(db, settings, cid)
    with db.session() as session:  # as if 20 of a larger send were out and it still sent
        session.execute(update(Campaign).where(Campaign.id == cid).values(status="sending"))
        ledger = (
            session.execute(select(Delivery.id).where(Delivery.campaign_id == cid)).scalars().all()
        )
    strict = settings.model_copy(update={"guard_min_sent": 10})
    processor = BounceProcessor(db, strict)
    token = Verp.from_settings(strict).address(str(ledger[0]))
    processor.process(arf("fbl@example.org", "x@example.org", return_path=token), source="smtp")
    page = client.get(f"/admin/campaigns/{cid}").text
    assert "reputation guard: complaint rate 5.00% (1 of 20 sent) passed 0.30%" in page
    assert 'class="alert alert-error" data-status-reason' in page and 'data-complained="1"' in page
    progress = client.get(f"/admin/api/campaigns/{cid}/progress").json()
    assert progress["status"] == "paused" and progress["complained"] == 1
    resumed = client.form(f"/admin/campaigns/{cid}/resume", {})
    assert resumed.status_code == 303
    with db.session() as session:
        assert session.get(Campaign, cid).status == "sending"  # type: ignore[union-attr]
