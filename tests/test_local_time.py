"""Local-time sending: a campaign arrives at 09:00 in each subscriber's zone (frozen clock).

2027-03-28 is the day Europe springs forward (01:00 UTC): 09:00 in London is
08:00 UTC that day, 09:00 UTC the day before.  New York moved two weeks
earlier (EDT, UTC-4); Tokyo has no DST.  Subscribers without a zone, or with
a name the zone database does not know, get the ``timezone`` setting (UTC).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.models import Campaign, Delivery, SendBatch, Subscriber
from newsletter.scheduling import admin, steps
from newsletter.sending import localtime
from newsletter.transports.memory import MemoryMessenger
from tests.scheduler_helpers import nocheck_starter
from tests.sending_helpers import FakeClock, add_subscribers
from tests.sequence_helpers import send_due

ZONES = {"tokyo": "Asia/Tokyo", "london": "Europe/London", "ny": "America/New_York",
         "nozone": None, "bogus": "Mars/Olympus_Mons"}  # fmt: skip
EXPECTED = {  # UTC hour each group's share is released at
    "tokyo": datetime(2027, 3, 28, 0, 0, tzinfo=UTC),
    "london": datetime(2027, 3, 28, 8, 0, tzinfo=UTC),  # BST since 01:00 UTC
    "nozone": datetime(2027, 3, 28, 9, 0, tzinfo=UTC),
    "bogus": datetime(2027, 3, 28, 9, 0, tzinfo=UTC),
    "ny": datetime(2027, 3, 28, 13, 0, tzinfo=UTC),
}


def _people(db: Database) -> None:
    with db.session() as session:
        for prefix, tz in ZONES.items():
            add_subscribers(session, 3, prefix=prefix)
            session.execute(
                update(Subscriber).where(Subscriber.email.like(f"{prefix}%")).values(time_zone=tz)
            )


def test_each_zone_gets_its_share_at_its_local_hour_across_dst(
    issue42: Database, settings: Settings
) -> None:
    _people(issue42)
    clock, mail = FakeClock(datetime(2027, 3, 27, 12, 0, tzinfo=UTC)), MemoryMessenger()
    with issue42.session() as session:
        campaign = admin.schedule_local(
            session, 42, on=date(2027, 3, 28), local_time="9:00", default_tz=settings.timezone,
            now=clock.now, grace_seconds=settings.misfire_grace_seconds,
        )  # fmt: skip
        cid, due = campaign.id, campaign.scheduled_at
    assert due == EXPECTED["tokyo"]  # the first zone's hour: when the audience is frozen
    start = nocheck_starter(issue42)
    clock.now = due - timedelta(minutes=1)
    assert steps.start_due_campaigns(issue42, settings, clock.now, start=start).started == []
    clock.now = due
    assert steps.start_due_campaigns(issue42, settings, clock.now, start=start).started == [cid]
    with issue42.session() as session:
        query = select(SendBatch.not_before).where(SendBatch.campaign_id == cid)
        holds = set(session.scalars(query))
    assert holds == set(EXPECTED.values())
    released: dict[str, datetime] = {}
    seen = 0
    for moment in sorted(set(EXPECTED.values())):
        clock.now = moment - timedelta(seconds=1)
        send_due(issue42, settings, mail, clock)
        assert len(mail.sent) == seen, f"something went before {moment}"
        clock.now = moment
        send_due(issue42, settings, mail, clock)
        for message in mail.sent[seen:]:
            released[re.sub(r"\d+@.*", "", message.email)] = moment
        seen = len(mail.sent)
    assert released == EXPECTED
    counts = Counter(m.email for m in mail.sent)
    assert len(counts) == 15 and set(counts.values()) == {1}  # every one, once
    send_due(issue42, settings, mail, clock)
    with issue42.session() as session:
        assert session.get(Campaign, cid).status == "sent"  # type: ignore[union-attr]
        states = set(session.scalars(select(Delivery.status).where(Delivery.campaign_id == cid)))
    assert states == {"accepted"}


def test_zone_names_and_times_are_checked(sqlite_db: Database) -> None:
    assert localtime.check_zone(" Europe/London ") == "Europe/London"
    with pytest.raises(ValidationError, match=r"^time zone: unknown time zone 'Europe/Lodnon'"):
        localtime.check_zone("Europe/Lodnon")
    assert localtime.browser_zone("Mars/Olympus_Mons") is None
    assert localtime.browser_zone("Asia/Tokyo") == "Asia/Tokyo"
    with pytest.raises(ValidationError, match="invalid time of day '25:00'"):
        localtime.parse_local("25:00")
    # New York's spring-forward gap: 02:30 does not exist on 2027-03-14, it fires at 03:30 EDT.
    ny = localtime.zone("America/New_York")
    assert localtime.release_at(date(2027, 3, 14), time(2, 30), ny) == datetime(
        2027, 3, 14, 7, 30, tzinfo=UTC
    )


def test_time_zones_import_from_csv_and_a_bad_one_names_its_line(
    sqlite_db: Database, settings: Settings, tmp_path: Path
) -> None:
    from newsletter.subscribers import service

    topics = [t.name for t in settings.topics]
    ours = tmp_path / "ours.csv"
    ours.write_text(
        "email,time_zone\nann@example.org,Asia/Tokyo\nbob@example.org,Europe/Lodnon\n"
        "cat@example.org,\n",
        encoding="utf-8",
    )
    exports = Path(__file__).resolve().parent / "data" / "subscriber_exports"
    with sqlite_db.session() as session:
        report = service.import_csv(ours, session=session, allowed_topics=topics)
        chimp = service.import_csv(
            exports / "mailchimp_subscribed_members_export.csv", session=session,
            allowed_topics=topics,
        )  # fmt: skip
        zones = dict(session.execute(select(Subscriber.email, Subscriber.time_zone)).all())
    assert report.added == 2
    assert [(p.line, p.message) for p in report.invalid] == [
        (3, "time_zone: unknown time zone 'Europe/Lodnon' (use an IANA name such as "
            "America/New_York)")
    ]  # fmt: skip
    assert chimp.added == 3 and zones["ada.lovelace@example.org"] == "Europe/London"
    assert (zones["ann@example.org"], zones["cat@example.org"]) == ("Asia/Tokyo", None)
    assert zones["grace.hopper@example.org"] is None  # no zone in the export: the default


def test_schedule_cli_local_time_and_its_mistakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    seeds_dir: Path,
) -> None:  # fmt: skip
    from newsletter.cli import main
    from newsletter.config import load_settings
    from newsletter.db import connect
    from tests.scheduler_helpers import import_issue_42

    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("NEWSLETTER_TIMEZONE", "America/New_York")
    settings = load_settings()
    db = connect(settings)
    import_issue_42(db, settings, seeds_dir)
    _people(db)
    db.dispose()

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("schedule", "42", "--at", "2030-03-28", "--local-time", "09:00")
    assert code == 0, err
    assert "09:00 local time on 2030-03-28" in out and "2030-03-28 00:00 UTC" in out  # Tokyo
    listed = json.loads(run("schedule", "list", "--json")[1])["campaigns"]
    assert [(c["due_utc"], c["local_time"]) for c in listed] == [
        ("2030-03-28T00:00:00+00:00", "09:00 on 2030-03-28 in each subscriber's zone")
    ]
    assert run("schedule", "reschedule", "1", "--at", "2030-04-01 09:00")[0] == 0
    listed = json.loads(run("schedule", "list", "--json")[1])["campaigns"]
    assert [(c["due_utc"], c["local_time"]) for c in listed] == [
        ("2030-04-01T13:00:00+00:00", None)  # an ordinary send now (New York's 09:00)
    ]
    for argv, needle in [
        (("--at", "2030-13-01", "--local-time", "09:00"), "invalid date '2030-13-01'"),
        (("--at", "2030-03-28", "--local-time", "9h"), "invalid time of day '9h'"),
        (("--at", "2001-03-28", "--local-time", "09:00"), "in the past"),
    ]:
        code, out, err = run("schedule", "42", *argv)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and needle in lines[0], err
        assert "Traceback" not in err


def test_subscribers_add_takes_a_time_zone_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from newsletter.cli import main
    from newsletter.config import load_settings
    from newsletter.db import connect
    from newsletter.subscribers import service

    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-test-secret")
    results = []
    for zone_name in ("Mars/Base", "Europe/London"):
        try:
            main(["subscribers", "add", "ann@example.org", "--confirmed", "--time-zone", zone_name])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        results.append((code, capsys.readouterr().err))
    (bad, bad_err), (good, good_err) = results
    lines = [line for line in bad_err.splitlines() if line.strip()]
    assert bad == 1 and len(lines) == 1 and "--time-zone: unknown time zone 'Mars/Base'" in lines[0]
    assert good == 0, good_err
    db = connect(load_settings())
    with db.session() as session:
        assert session.scalar(select(Subscriber.time_zone)) == "Europe/London"
        exported = service.gdpr_export("ann@example.org", session=session)
    assert exported["subscriber"]["time_zone"] == "Europe/London"  # it is theirs: exported
    db.dispose()


def test_the_json_sign_up_api_takes_a_time_zone(sqlite_db: Database, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from newsletter.web import create_app

    app = create_app(settings, sqlite_db, messenger=MemoryMessenger())
    with TestClient(app) as client:
        for email, tz in (("kenji@example.org", "Asia/Tokyo"), ("zed@example.org", "Nowhere/X")):
            answer = client.post("/api/subscribe", json={"email": email, "time_zone": tz})
            assert answer.status_code == 202, answer.text
    with sqlite_db.session() as session:
        zones = dict(session.execute(select(Subscriber.email, Subscriber.time_zone)).all())
    assert zones == {"kenji@example.org": "Asia/Tokyo", "zed@example.org": None}
