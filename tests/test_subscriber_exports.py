"""Imports of other tools' subscriber exports, on both backends: statuses, consent, tags, dry run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ImportFormatError, ValidationError
from newsletter.models import ConsentEvent, Subscriber, Suppression
from newsletter.subscribers import formats, service, suppression
from newsletter.subscribers.csvio import ImportReport
from newsletter.subscribers.ips import masked_ip

DATA = Path(__file__).resolve().parent / "data" / "subscriber_exports"


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


@pytest.fixture
def topics(settings: Settings) -> list[str]:
    return [t.name for t in settings.topics]


def run(session: Session, topics: list[str], name: str, **kw: object) -> ImportReport:
    return service.import_csv(DATA / name, session=session, allowed_topics=topics, **kw)  # type: ignore[arg-type]


def subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).first()


def reason(session: Session, email: str) -> str | None:
    held = suppression.suppression_for(suppression.address_hash(email), session=session)
    return held.reason if held else None


@pytest.mark.parametrize(
    ("name", "tool"),
    [
        ("mailchimp_subscribed_members_export.csv", "mailchimp"),
        ("mailchimp_unsubscribed_members_export.csv", "mailchimp"),
        ("mailchimp_cleaned_members_export.csv", "mailchimp"),
        ("substack_email_list.csv", "substack"),
        ("listmonk_subscribers.csv", "listmonk"),
        ("buttondown_subscribers.csv", "buttondown"),
        ("ghost_members.csv", "ghost"),
    ],
)
def test_each_tool_is_detected_from_its_header(name: str, tool: str) -> None:
    header = (DATA / name).read_text(encoding="utf-8").splitlines()[0]
    import csv

    assert formats.detect(next(csv.reader([header]))).name == tool


def test_our_own_header_is_not_mistaken_for_a_tool() -> None:
    assert formats.detect(["email", "name", "status", "topics"]) is formats.NATIVE
    with pytest.raises(ValidationError, match="unknown import format 'mailman'"):
        formats.detect(["email"], "mailman")


def test_mailchimp_subscribed_keeps_consent_time_tags_and_masks_the_ip(
    session: Session, topics: list[str]
) -> None:
    report = run(session, topics, "mailchimp_subscribed_members_export.csv")
    assert (report.format, report.added, report.invalid) == ("mailchimp", 3, [])
    ada = subscriber(session, "ada.lovelace@example.org")
    assert ada is not None and ada.status == "confirmed" and ada.name == "Ada Lovelace"
    assert ada.topics == ["Equity"]  # "VIP" is no topic here: reported, not stored
    assert report.unmatched_topics == {"VIP": 1}
    assert ada.created_at == datetime(2021, 3, 14, 9, 12, 31, tzinfo=UTC)
    assert ada.confirmed_at == datetime(2021, 3, 14, 9, 14, tzinfo=UTC)
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == ada.id)).one()
    assert event.kind == "import" and event.detail is not None
    assert event.detail["tool"] == "mailchimp"
    assert event.detail["opted_in_at"] == "2021-03-14T09:12:31+00:00"
    assert event.detail["opt_in_network"] == "198.51.100.0/24"
    assert "198.51.100.23" not in str(event.detail) and event.ip != "198.51.100.23"
    katherine = subscriber(session, "katherine.j@example.org")
    assert katherine is not None and katherine.topics == ["Personalized Learning"]
    k_event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == katherine.id)
    ).one()
    assert k_event.detail is not None and k_event.detail["opt_in_network"] == "2001:db8:85a3::/48"


def test_mailchimp_unsubscribed_and_cleaned_become_suppressions_never_subscribers(
    session: Session, topics: list[str]
) -> None:
    run(session, topics, "mailchimp_subscribed_members_export.csv")
    unsub = run(session, topics, "mailchimp_unsubscribed_members_export.csv")
    cleaned = run(session, topics, "mailchimp_cleaned_members_export.csv")
    assert (unsub.suppressions_added, unsub.added, cleaned.suppressions_added) == (2, 0, 1)
    assert subscriber(session, "leaving@example.org") is None
    assert subscriber(session, "gone.away@example.org") is None
    assert reason(session, "leaving@example.org") == "unsubscribed"
    assert reason(session, "gone.away@example.org") == "hard_bounce"
    grace = subscriber(session, "grace.hopper@example.org")  # subscribed, then unsubscribed
    assert grace is not None and grace.status == "unsubscribed"
    note = session.scalars(select(Suppression.note).order_by(Suppression.id)).first()
    assert note is not None and "mailchimp" in note
    again = run(session, topics, "mailchimp_subscribed_members_export.csv")
    assert (again.added, again.suppressed) == (0, 1)  # the subscribed file cannot re-add Grace


def test_substack_email_disabled_is_suppressed(session: Session, topics: list[str]) -> None:
    report = run(session, topics, "substack_email_list.csv")
    assert (report.format, report.added, report.suppressions_added) == ("substack", 2, 1)
    assert [p.line for p in report.invalid] == [5]
    assert reason(session, "muted.reader@example.org") == "unsubscribed"
    paying = subscriber(session, "paying.reader@example.org")
    assert paying is not None and paying.created_at == datetime(2022, 2, 1, 10, tzinfo=UTC)


def test_listmonk_blocklisted_and_disabled(session: Session, topics: list[str]) -> None:
    report = run(session, topics, "listmonk_subscribers.csv")
    assert (report.format, report.added, report.suppressions_added) == ("listmonk", 2, 2)
    maria = subscriber(session, "maria@example.org")
    assert maria is not None and maria.name == "Maria Montessori"
    assert maria.created_at == datetime(2023, 4, 1, 9, 30, 0, 123456, tzinfo=UTC)
    assert reason(session, "blocked@example.org") == "unsubscribed"
    assert reason(session, "paused@example.org") == "manual"


def test_buttondown_pending_stays_pending_and_undeliverable_is_cleaned(
    session: Session, topics: list[str]
) -> None:
    report = run(session, topics, "buttondown_subscribers.csv")
    assert (report.format, report.added, report.suppressions_added) == ("buttondown", 2, 2)
    pending = subscriber(session, "unconfirmed@example.org")
    assert pending is not None and pending.status == "pending" and pending.confirmed_at is None
    bell = subscriber(session, "bell.hooks@example.org")
    assert bell is not None and bell.status == "confirmed" and bell.topics == ["Equity"]
    assert report.unmatched_topics == {"Book club": 1}
    assert reason(session, "left@example.org") == "unsubscribed"
    assert reason(session, "bounced@example.org") == "hard_bounce"
    confirmed = service.list_subscribers(session=session, status="confirmed")
    assert [s.email for s in confirmed] == ["bell.hooks@example.org"]  # pending is never mailed


def test_ghost_labels_and_unsubscribed_members(session: Session, topics: list[str]) -> None:
    report = run(session, topics, "ghost_members.csv")
    assert (report.format, report.added, report.suppressions_added) == ("ghost", 2, 1)
    paulo = subscriber(session, "paulo.freire@example.org")
    assert paulo is not None and paulo.topics == ["Assessment"]
    assert report.unmatched_topics == {"Conference 2022": 1}
    assert subscriber(session, "quiet@example.org") is None
    assert reason(session, "quiet@example.org") == "unsubscribed"


def test_forced_format_and_dry_run(session: Session, topics: list[str]) -> None:
    preview = run(session, topics, "ghost_members.csv", fmt="ghost", dry_run=True)
    assert (preview.added, preview.suppressions_added, preview.dry_run) == (2, 1, True)
    assert session.scalars(select(Subscriber)).all() == []
    assert session.scalars(select(Suppression)).all() == []
    assert session.scalars(select(ConsentEvent)).all() == []
    with pytest.raises(ImportFormatError, match="not that of a Mailchimp export"):
        run(session, topics, "ghost_members.csv", fmt="mailchimp")


def test_unknown_tool_status_is_an_invalid_row(
    session: Session, topics: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "listmonk.csv"
    path.write_text(
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        "u1,a@example.org,A,{},sleeping,2023-01-01 00:00:00 +0000 UTC,\n"
        "u2,b@example.org,B,{},enabled,yesterday,\n",
        encoding="utf-8",
    )
    report = service.import_csv(path, session=session, allowed_topics=topics)
    assert [(p.line, p.message) for p in report.invalid] == [
        (2, "unknown listmonk status 'sleeping'"),
        (3, "unreadable date 'yesterday'"),
    ]


def test_masked_ip() -> None:
    assert masked_ip("203.0.113.7") == "203.0.113.0/24"
    assert masked_ip("::ffff:203.0.113.7") == "203.0.113.0/24"
    assert masked_ip("2001:db8::1") == "2001:db8::/48"
    assert masked_ip("") is None and masked_ip("not an ip") is None
