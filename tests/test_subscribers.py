"""The subscriber service on SQLite and PostgreSQL: sign-up, consent trail, suppression, erasure."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import StateError, TokenError, ValidationError
from newsletter.models import ConsentEvent, Subscriber, Suppression, utcnow
from newsletter.subscribers import service, suppression
from newsletter.subscribers.addresses import address_hash, normalise_email
from newsletter.subscribers.links import confirm_url, preferences_url, unsubscribe_url
from newsletter.subscribers.service import Notice, SignupRequest
from newsletter.subscribers.store import Actor
from newsletter.subscribers.tokens import Purpose, tokens_for

WEB = Actor(source="web:test", ip="203.0.113.9", user_agent="pytest")


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        yield s


@pytest.fixture
def topics(settings: Settings) -> list[str]:
    return [t.name for t in settings.topics]


def signup(session: Session, allowed: list[str], email: str, **kw: object) -> service.SignupOutcome:
    request = SignupRequest(email=email, actor=WEB, **kw)  # type: ignore[arg-type]
    return service.subscribe(request, session=session, allowed_topics=allowed)


def confirmed(session: Session, allowed: list[str], email: str, *chosen: str) -> Subscriber:
    outcome = signup(session, allowed, email, topics=list(chosen))
    assert outcome.subscriber is not None
    service.confirm(outcome.subscriber, session=session, actor=WEB)
    return outcome.subscriber


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ann@example.org", "ann@example.org"),
        ("  Ann.Lee@Example.ORG \t", "ann.lee@example.org"),
        ("josé@exämple.org", "josé@exämple.org"),
    ],
)
def test_normalise_email(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected
    assert address_hash(raw) == address_hash(expected)
    assert len(address_hash(raw)) == 64


@pytest.mark.parametrize(
    "raw",
    [
        "", "   ", "ann", "ann@", "@example.org", "ann@@example.org", "Ann <ann@example.org>",
        "ann@example.org\r\nBcc: x@example.org", "ann@example.org\n", "ann\x00@example.org",
        "a b@example.org", "ann@" + "x" * 320 + ".org", "\ud800@example.org",
    ],
)  # fmt: skip
def test_invalid_addresses_raise_one_clear_error(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        normalise_email(raw)
    assert "\n" not in str(info.value) and "\r" not in str(info.value)


# ---------------------------------------------------------------- schema


# ---------------------------------------------------------------- sign-up


def test_subscribe_creates_pending_with_consent_record(session: Session, topics: list[str]) -> None:
    outcome = signup(session, topics, " Ann@Example.org ", name="Ann Lee", topics=topics[:2])
    assert outcome.notice is Notice.CONFIRM
    row = outcome.subscriber
    assert row is not None
    assert (row.email, row.status, row.name) == ("ann@example.org", "pending", "Ann Lee")
    assert sorted(row.topics) == sorted(topics[:2])
    assert row.email_hash == address_hash("ann@example.org")
    assert row.last_confirmation_sent_at is not None
    event = session.scalars(select(ConsentEvent)).one()
    assert (event.kind, event.ip, event.user_agent, event.source) == (
        "subscribe", "203.0.113.9", "pytest", "web:test",
    )  # fmt: skip
    assert event.consent_text == service.CONSENT_TEXT
    assert event.subscriber_id == row.id


def test_one_confirmation_email_per_address_per_hour(session: Session, topics: list[str]) -> None:
    first = signup(session, topics, "ann@example.org")
    again = signup(session, topics, "ANN@example.org")
    assert (first.notice, again.notice) == (Notice.CONFIRM, Notice.NONE)
    assert again.subscriber is not None
    later = utcnow() + timedelta(hours=1, seconds=1)
    request = SignupRequest(email="ann@example.org", actor=WEB)
    hour_later = service.subscribe(request, session=session, allowed_topics=topics, now=later)
    assert hour_later.notice is Notice.CONFIRM
    assert len(service.list_subscribers(session=session)) == 1  # never duplicated


def test_confirmed_address_gets_already_notice_and_no_changes(
    session: Session, topics: list[str]
) -> None:
    row = confirmed(session, topics, "ann@example.org", topics[0])
    row.last_confirmation_sent_at = None  # the hour has passed
    outcome = signup(session, topics, "ann@example.org", name="Mallory", topics=topics[1:3])
    assert outcome.notice is Notice.ALREADY
    assert row.topics == [topics[0]] and row.name is None and row.status == "confirmed"


def test_confirm_records_when_and_where_and_is_idempotent(
    session: Session, topics: list[str]
) -> None:
    row = signup(session, topics, "ann@example.org").subscriber
    assert row is not None
    confirm_actor = Actor(source="web:confirm", ip="198.51.100.7", user_agent="phone")
    assert service.confirm(row, session=session, actor=confirm_actor) is True
    assert service.confirm(row, session=session, actor=confirm_actor) is False
    assert row.status == "confirmed" and row.confirmed_at is not None
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
    assert [e.kind for e in events] == ["subscribe", "confirm"]
    assert events[1].ip == "198.51.100.7"
    assert events[1].consent_text == service.CONSENT_TEXT  # what they agreed to, copied over


@pytest.mark.parametrize("reason", ["hard_bounce", "complaint", "manual"])
def test_suppressed_by_others_gets_no_email(
    session: Session, topics: list[str], reason: str
) -> None:
    suppression.suppress("ann@example.org", reason, session=session)
    outcome = signup(session, topics, "ann@example.org")
    assert outcome.notice is Notice.NONE
    assert service.list_subscribers(session=session) == []


def test_unsubscribed_person_can_resubscribe_by_confirming(
    session: Session, topics: list[str]
) -> None:
    row = confirmed(session, topics, "ann@example.org", topics[0])
    service.unsubscribe(row, session=session, actor=WEB)
    assert suppression.is_suppressed("ann@example.org", session=session)
    row.last_confirmation_sent_at = None
    outcome = signup(session, topics, "ann@example.org", topics=[topics[1]])
    assert outcome.notice is Notice.CONFIRM and row.status == "pending"
    assert suppression.is_suppressed("ann@example.org", session=session)  # until they confirm
    service.confirm(row, session=session, actor=WEB)
    assert row.status == "confirmed"
    assert not suppression.is_suppressed("ann@example.org", session=session)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Ann\r\nBcc: x@example.org"),
        ("name", "Ann\x00"),
        ("name", "Ann\nLee"),
        ("name", "x" * 201),
        ("email", "ann@example.org\r\n"),
        ("email", "ann\x00@example.org"),
    ],
)
def test_header_injection_rejected_before_storing(
    session: Session, topics: list[str], field: str, value: str
) -> None:
    fields = {"email": "ann@example.org", field: value}
    with pytest.raises(ValidationError):
        signup(session, topics, **fields)  # type: ignore[arg-type]
    assert service.list_subscribers(session=session) == []


def test_unknown_topic_rejected(session: Session, topics: list[str]) -> None:
    with pytest.raises(ValidationError, match="unknown topic"):
        signup(session, topics, "ann@example.org", topics=["Astrology"])


def test_topics_matched_case_insensitively(session: Session, topics: list[str]) -> None:
    row = signup(session, topics, "ann@example.org", topics=[topics[0].upper()]).subscriber
    assert row is not None and row.topics == [topics[0]]


# ---------------------------------------------------------------- suppression and unsubscribe


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("unsubscribed", "unsubscribed"),
        ("hard_bounce", "bounced"),
        ("complaint", "complained"),
        ("manual", "confirmed"),
    ],
)
def test_suppress_sets_status_and_is_idempotent(
    session: Session, topics: list[str], reason: str, status: str
) -> None:
    row = confirmed(session, topics, "ann@example.org")
    for _ in range(2):
        suppression.suppress("ANN@example.org", reason, session=session)
    session.refresh(row)
    assert row.status == status
    assert session.scalars(select(Suppression)).one().reason == reason
    assert suppression.suppressed_hashes(
        [row.email_hash, address_hash("bob@example.org")], session=session
    ) == {row.email_hash}


def test_complaint_after_unsubscribe_shows_complained(session: Session, topics: list[str]) -> None:
    row = confirmed(session, topics, "ann@example.org")
    suppression.suppress(row.email, "unsubscribed", session=session)
    suppression.suppress(row.email, "complaint", session=session)
    session.refresh(row)
    assert row.status == "complained"
    suppression.suppress(row.email, "unsubscribed", session=session)
    session.refresh(row)
    assert row.status == "complained"  # never moves back down


def test_unknown_reason_rejected(session: Session) -> None:
    with pytest.raises(ValidationError, match="unknown suppression reason"):
        suppression.suppress("ann@example.org", "bored", session=session)


def test_unsubscribe_is_idempotent_with_one_withdraw_event(
    session: Session, topics: list[str]
) -> None:
    row = confirmed(session, topics, "ann@example.org")
    assert service.unsubscribe(row, session=session, actor=WEB) is True
    assert service.unsubscribe(row, session=session, actor=WEB) is False
    assert row.status == "unsubscribed" and row.unsubscribed_at is not None
    kinds = session.scalars(select(ConsentEvent.kind).order_by(ConsentEvent.id)).all()
    assert kinds == ["subscribe", "confirm", "withdraw"]


def test_unsubscribe_unknown_address_still_suppresses(session: Session) -> None:
    service.unsubscribe_email("nobody@example.org", session=session, actor=WEB)
    assert suppression.is_suppressed("nobody@example.org", session=session)


# ---------------------------------------------------------------- audience


def test_audience_query(session: Session, topics: list[str]) -> None:
    a, b = topics[0], topics[1]
    ann = confirmed(session, topics, "ann@example.org", a)
    bob = confirmed(session, topics, "bob@example.org", b)
    cat = confirmed(session, topics, "cat@example.org", a, b)
    paused = confirmed(session, topics, "dan@example.org", a)
    paused.paused_until = utcnow() + timedelta(days=30)
    was_paused = confirmed(session, topics, "eve@example.org", a)
    was_paused.paused_until = utcnow() - timedelta(days=1)
    gone = confirmed(session, topics, "fay@example.org", a)
    suppression.suppress(gone.email, "hard_bounce", session=session)
    listed = confirmed(session, topics, "gus@example.org", a)
    suppression.suppress(listed.email, "manual", session=session)  # status stays confirmed
    signup(session, topics, "pending@example.org", topics=[a])
    session.flush()

    def ids(chosen: list[str] | None) -> set[int]:
        return set(session.scalars(service.audience_query(chosen)))

    assert ids(None) == {ann.id, bob.id, cat.id, was_paused.id}
    assert ids([a]) == {ann.id, cat.id, was_paused.id}
    assert ids([b]) == {bob.id, cat.id}
    assert ids([]) == ids(None)


# ---------------------------------------------------------------- tokens against the database


def test_tokens_resolve_only_their_own_subscriber(
    session: Session, topics: list[str], settings: Settings
) -> None:
    ann = confirmed(session, topics, "ann@example.org")
    bob = confirmed(session, topics, "bob@example.org")
    tokens = tokens_for(settings)
    token = tokens.make(Purpose.UNSUBSCRIBE, ann)
    assert service.from_token(tokens, Purpose.UNSUBSCRIBE, token, session=session) is ann
    with pytest.raises(TokenError):
        service.from_token(tokens, Purpose.PREFERENCES, token, session=session)
    assert tokens.make(Purpose.UNSUBSCRIBE, bob) != token


def test_links_are_absolute_on_base_url(
    session: Session, topics: list[str], settings: Settings
) -> None:
    ann = confirmed(session, topics, "ann@example.org")
    base = settings.base_url.rstrip("/")
    assert unsubscribe_url(settings, ann).startswith(base + "/u/")
    assert preferences_url(settings, ann).startswith(base + "/preferences/")
    assert confirm_url(settings, ann).startswith(base + "/confirm/")


# ---------------------------------------------------------------- erasure and export


def test_erase_forgets_person_keeps_hash_and_kills_tokens(
    db: Database, topics: list[str], settings: Settings
) -> None:
    tokens = tokens_for(settings)
    with db.session() as session:
        ann = confirmed(session, topics, "ann@example.org", topics[0])
        old_token = tokens.make(Purpose.UNSUBSCRIBE, ann)
        old_id = ann.id
    with db.session() as session:
        assert service.erase("ANN@example.org", session=session, actor=WEB) is True
    with db.session() as session:
        assert session.get(Subscriber, old_id) is None
        assert suppression.is_suppressed("ann@example.org", session=session)
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [e.kind for e in events] == ["subscribe", "confirm", "erase"]
        for event in events[:2]:
            assert (event.subscriber_id, event.email_hash, event.ip, event.user_agent) == (
                None, None, None, None,
            )  # fmt: skip
            assert event.consent_text == service.CONSENT_TEXT
        assert events[2].ip is None
        with pytest.raises(TokenError):
            service.from_token(tokens, Purpose.UNSUBSCRIBE, old_token, session=session)
    with db.session() as session:  # they come back on their own: a new row, new id, old token dead
        row = confirmed(session, topics, "ann@example.org")
        assert row.id != old_id
        with pytest.raises(TokenError):
            service.from_token(tokens, Purpose.UNSUBSCRIBE, old_token, session=session)


def test_gdpr_export_holds_everything(session: Session, topics: list[str]) -> None:
    ann = confirmed(session, topics, "ann@example.org", topics[0])
    service.unsubscribe(ann, session=session, actor=WEB)
    data = service.gdpr_export("Ann@example.org", session=session)
    assert data["email"] == "ann@example.org"
    assert data["subscriber"]["topics"] == [topics[0]]
    assert [e["kind"] for e in data["consent_events"]] == ["subscribe", "confirm", "withdraw"]
    assert data["consent_events"][0]["ip"] == "203.0.113.9"
    assert data["suppression"]["reason"] == "unsubscribed"
    assert service.gdpr_export("nobody@example.org", session=session)["subscriber"] is None


def test_add_refuses_duplicates_and_suppressed(session: Session, topics: list[str]) -> None:
    service.add("ann@example.org", session=session, actor=WEB, allowed_topics=topics)
    with pytest.raises(StateError, match="already"):
        service.add("ANN@example.org", session=session, actor=WEB, allowed_topics=topics)
    suppression.suppress("bob@example.org", "complaint", session=session)
    with pytest.raises(StateError, match="suppressed"):
        service.add("bob@example.org", session=session, actor=WEB, allowed_topics=topics)


def test_concurrent_signups_make_one_row_and_one_email(db: Database, topics: list[str]) -> None:
    """The per-address limit is in the database: racing requests cannot both send."""
    import threading

    barrier = threading.Barrier(6)
    notices: list[Notice] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            barrier.wait()
            with db.session() as session:
                notices.append(signup(session, topics, "race@example.org").notice)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(notices) == sorted([Notice.CONFIRM] + [Notice.NONE] * 5)
    with db.session() as session:
        assert service.list_subscribers(session=session)[0].email == "race@example.org"
        assert len(service.list_subscribers(session=session)) == 1
