"""Subject tests: the sample split, the winner after the window, the rest on the normal ledger."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.models import Campaign, Delivery, SendBatch, SubjectTest
from newsletter.scheduling import steps
from newsletter.sending import abtest, campaigns, service
from newsletter.tracking.engagement import store_hits
from newsletter.transports import MemoryMessenger
from tests.sending_helpers import FakeClock, add_subscribers

SUBJECTS = ("Ten resources for April", "What works in ESSA plans", "Issue 42 is here")
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


def _send_what_is_due(db: Database, settings: Settings, messenger: MemoryMessenger,
                      clock: FakeClock) -> None:  # fmt: skip
    """One worker until nothing is claimable (held batches are not), on the fake clock."""
    with service.open_worker(db, settings, messenger=messenger, clock=clock) as worker:
        worker.sleep = clock.sleep
        worker.run(threading.Event(), until=lambda: True)


def _engage(db: Database, clock: FakeClock, ledger_ids: list[int], kind: str) -> None:
    """Human clicks or opens as the tracking recorder stores them (spooled hits)."""
    with db.session() as session:
        issue_id = session.scalars(select(Campaign.issue_id)).first()
    at = (clock() + timedelta(hours=1)).timestamp()
    hits = [
        {"id": uuid.uuid4().hex, "k": kind[0], "d": did, "i": issue_id, "p": 1, "t": at,
         "ua": BROWSER, "n": f"n{did}"}
        for did in ledger_ids
    ]  # fmt: skip
    with db.session() as session:
        store_hits(hits, session=session, now=clock(), window=timedelta(seconds=10))


def _sample(db: Database, cid: int) -> dict[int, list[int]]:
    with db.session() as session:
        rows = session.execute(
            select(Delivery.variant, Delivery.id)
            .where(Delivery.campaign_id == cid, Delivery.in_sample.is_(True))
            .order_by(Delivery.id)
        ).all()
    out: dict[int, list[int]] = {}
    for variant, did in rows:
        out.setdefault(int(variant), []).append(int(did))
    return out


@pytest.mark.parametrize("backend", ["postgresql"])
def test_ab_campaign_each_subscriber_gets_one_message_and_the_rest_get_the_winner(
    issue42: Database, settings: Settings
) -> None:
    db, clock, messenger = issue42, FakeClock(), MemoryMessenger()
    with db.session() as session:
        add_subscribers(session, 60)
        plan = abtest.make_plan(SUBJECTS, share_percent=10, window="4h", metric="clicks")
        cid = campaigns.create_campaign(42, session=session, subject_test=plan, now=clock()).id
    assert service.start(db, settings, cid, now=clock())

    _send_what_is_due(db, settings, messenger, clock)
    assert len(messenger.sent) == 18  # 3 subjects x 10 % of 60; the other 42 are held
    sample = _sample(db, cid)
    assert {v: len(ids) for v, ids in sample.items()} == {1: 6, 2: 6, 3: 6}
    by_ref = {int(m.ref): m.email_message.subject for m in messenger.sent}
    for variant, ids in sample.items():
        assert {by_ref[did] for did in ids} == {SUBJECTS[variant - 1]}
    with db.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "sending"

    # B draws 4 readers' clicks, A one reader's click and several opens; C nothing.
    _engage(db, clock, sample[2][:4], "click")
    _engage(db, clock, sample[1][:1], "click")
    _engage(db, clock, sample[1][1:6], "open")
    assert abtest.decide_due(db, clock() + timedelta(hours=3, minutes=59)) == []
    clock.now += timedelta(hours=4, seconds=1)
    steps.tick(db, settings, clock())  # the scheduler's step picks it
    with db.session() as session:
        test_row = session.get(SubjectTest, cid)
        assert test_row is not None and test_row.winner == 2
        assert (test_row.note or "").startswith("B won with 66.7% unique human clicks (4 of 6)")
    assert abtest.decide_due(db, clock()) == []  # picked once

    _send_what_is_due(db, settings, messenger, clock)
    emails = Counter(m.email for m in messenger.sent)
    assert len(emails) == 60 and set(emails.values()) == {1}  # everyone once, no one twice
    rest = [m for m in messenger.sent[18:]]
    assert len(rest) == 42 and {m.email_message.subject for m in rest} == {SUBJECTS[1]}
    with db.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "sent"
        variants = Counter(session.scalars(select(Delivery.variant)))
        assert variants == {1: 6, 2: 6 + 42, 3: 6}
        report = campaigns.campaign_report(cid, session=session, with_recipients=False)
    test = report.subject_test
    assert test is not None and test["winner"] == 2 and test["winner_subject"] == SUBJECTS[1]
    assert [(v["label"], v["sample"], v["clicked"]) for v in test["variants"]] == [
        ("A", 6, 1),
        ("B", 6, 4),
        ("C", 6, 0),
    ]
    assert test["rest"] == {"recipients": 42, "reached": 42}
    assert "too few clicks to tell" in test["confidence"].lower()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_schedulers_pick_the_winner_once(db: Database, settings: Settings) -> None:
    from tests.sending_helpers import NoChecks, make_issue

    clock = FakeClock()
    with db.session() as session:
        make_issue(session)
        add_subscribers(session, 40)
        plan = abtest.make_plan(SUBJECTS[:2], share_percent=20, window="1h", metric="opens")
        cid = campaigns.create_campaign(42, session=session, subject_test=plan, now=clock()).id
    with db.session() as session:
        campaigns.start_campaign(cid, session=session, checks=NoChecks(), batch_size=5,
                                 now=clock())  # fmt: skip
    later = clock() + timedelta(hours=2)
    barrier = threading.Barrier(2)
    picked: list[list[abtest.Decision]] = []

    def scheduler() -> None:
        barrier.wait()
        picked.append(abtest.decide_due(db, later))

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(p) for p in picked) == [0, 1]
    with db.session() as session:
        statuses = Counter(session.scalars(select(SendBatch.status)))
        assert statuses == {"pending": 9}  # 2 x 2 sampled batches + 5 held, 5 a batch: released
        test = session.get(SubjectTest, cid)
        assert test is not None and test.winner == 1 and "tied" in (test.note or "")


def test_confidence_says_too_few_and_how_sure() -> None:
    def result(variant: int, reached: int, clicked: int) -> abtest.VariantResult:
        return abtest.VariantResult(variant, "AB"[variant - 1], f"s{variant}", reached, reached,
                                    clicked, clicked, "clicks")  # fmt: skip

    assert "Too few clicks" in abtest.confidence([result(1, 500, 3), result(2, 500, 4)])
    assert "Very likely" in abtest.confidence([result(1, 1000, 40), result(2, 1000, 90)])
    assert "No clear difference" in abtest.confidence([result(1, 1000, 50), result(2, 1000, 55)])
    assert abtest.pick([result(1, 1000, 40), result(2, 1000, 90)])[0] == 2


@pytest.mark.parametrize(
    ("subjects", "share", "needle"),
    [
        (["Only one"], 10, "needs 2 or 3 subject lines, got 1"),
        (["a", "b", "c", "d"], 10, "at most 3 subject lines, got 4"),
        (["a", "b", "c"], 40, "the sample would be 120 % of the audience"),
        (["Same", "same"], 10, "must differ"),
    ],
)
def test_bad_plans_are_refused(subjects: list[str], share: int, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        abtest.make_plan(subjects, share_percent=share)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "cli-test-secret")
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(result: tuple[int, str, str], needle: str) -> None:
    code, _out, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in err and len(lines) == 1, err
    assert needle in lines[0]


def test_cli_creates_a_subject_test_and_refuses_bad_ones(
    cli_env: Path, capsys: pytest.CaptureFixture[str], seeds_dir: Path
) -> None:
    from newsletter.config import load_settings
    from newsletter.db import connect
    from tests.admin_helpers import load_issue_42

    settings = load_settings()
    db = connect(settings)
    try:
        load_issue_42(db, settings, seeds_dir)
        with db.session() as session:
            add_subscribers(session, 12)
        variants = ["--subject-variant", "One", "--subject-variant", "Two"]
        code, out, err = _run(capsys, "campaign", "create", "42", *variants, "--test-share", "25",
                              "--test-window", "90m", "--test-metric", "opens")  # fmt: skip
        assert code == 0, err
        assert "campaign #1 created" in out and "25 % of the audience each" in out
        assert "after 90m" in out
        _one_line_error(
            _run(capsys, "campaign", "create", "42", "--subject-variant", "Alone", "--resend"),
            "needs 2 or 3 subject lines, got 1",
        )
        four = [arg for s in "ABCD" for arg in ("--subject-variant", s)]
        _one_line_error(_run(capsys, "campaign", "create", "42", *four, "--resend"),
                        "at most 3 subject lines, got 4")  # fmt: skip
        three = [arg for s in "ABC" for arg in ("--subject-variant", s)]
        _one_line_error(
            _run(capsys, "campaign", "create", "42", *three, "--test-share", "5", "--resend",
                 "--topic", "Assessment"),
            "is larger than the audience (0 subscribers)",
        )  # fmt: skip
        _one_line_error(_run(capsys, "campaign", "create", "42", *variants, "--test-window",
                             "soon", "--resend"), "not a duration")  # fmt: skip
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(Campaign)) == 1
            test = session.get(SubjectTest, 1)
            assert test is not None and test.subjects == ["One", "Two"]
            assert (test.share_percent, test.window_seconds, test.metric) == (25, 5400, "opens")
        code, out, _ = _run(capsys, "campaign", "report", "1", "--json")
        assert code == 0
        import json

        shown = json.loads(out)["subject_test"]
        assert [v["subject"] for v in shown["variants"]] == ["One", "Two"]
        assert shown["winner"] is None and shown["decide_at"] is None

        code, out, err = _run(capsys, "campaign", "start", "1", "--wait")
        assert code == 0, err
        assert "the test sample is sent; the rest goes out when the winner is picked" in out
        assert "subject test: 25 % each, by unique human opens, window 90m" in out
        code, out, _ = _run(capsys, "campaign", "pick-winner", "1")
        assert code == 0 and "pass --now to pick before" in out
        code, out, _ = _run(capsys, "campaign", "pick-winner", "1", "--now")
        assert code == 0 and "A kept: the subjects tied" in out and "released with 'One'" in out
        code, out, _ = _run(capsys, "campaign", "pick-winner", "1", "--now")
        assert "the winner was already picked (variant 1)" in out
        with db.session() as session:
            held = session.scalar(
                select(func.count()).select_from(SendBatch).where(SendBatch.status == "held")
            )
            sample = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.in_sample.is_(True))
            )
            assert held == 0 and sample == 6  # 25 % of 12, for each of 2 subjects
    finally:
        db.dispose()


def test_start_refuses_a_sample_the_audience_no_longer_fills(sqlite_db: Database) -> None:
    """The audience shrank after creation: the start is refused and nothing is half-frozen."""
    from newsletter.models import Subscriber
    from tests.sending_helpers import NoChecks, make_issue

    clock = FakeClock()
    with sqlite_db.session() as session:
        make_issue(session)
        add_subscribers(session, 3)
        plan = abtest.make_plan(SUBJECTS, share_percent=30)
        cid = campaigns.create_campaign(42, session=session, subject_test=plan, now=clock()).id
    with sqlite_db.session() as session:
        session.execute(
            Subscriber.__table__.update()
            .where(Subscriber.email == "user0@example.org")
            .values(status="unsubscribed")
        )
    refused = pytest.raises(ValidationError, match=r"larger than the audience \(2 subscribers\)")
    with refused, sqlite_db.session() as session:
        campaigns.start_campaign(cid, session=session, checks=NoChecks(), batch_size=10,
                                 now=clock())  # fmt: skip
    with sqlite_db.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "draft"
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.get(SubjectTest, cid) is not None


# --- the preheader and the admin pages -----------------------------------------------------


def test_the_preheader_is_the_hidden_first_line_of_the_email_and_the_inbox_line() -> None:
    import re
    from dataclasses import replace

    from newsletter.issues.preview import inbox_snippet
    from newsletter.render import Renderer, render_issue, render_web_version
    from tests.issue_helpers import THEME, issue_42

    issue = replace(issue_42(), preheader="Tips & tricks for April")
    html = render_issue(issue, theme=THEME, renderer=Renderer()).html
    first = re.search(r"<body[^>]*>\s*<div style=\"([^\"]*)\">([^<]*)", html)
    assert first is not None
    assert "display:none" in first.group(1) and "max-height:0px" in first.group(1)
    assert first.group(2).startswith("Tips &amp; tricks for April&#847;")  # escaped, padded
    assert inbox_snippet(html) == "Tips & tricks for April"
    web = render_web_version(issue, theme=THEME, renderer=Renderer())
    assert "Tips &amp; tricks for April" not in web  # the archive page has no preview line


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_form_review_and_report_of_a_subject_test(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    from tests.admin_helpers import load_issue_42, signed_in_client

    load_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, 20)
    client = signed_in_client(db, settings, "admin")
    listing = client.get("/admin/campaigns").text
    assert listing.count('name="subjects"') == 3 and 'id="test_window"' in listing
    form = {"issue": "42", "when": "now", "subjects": ["Alpha", "Beta", ""],
            "test_share": "20", "test_window": "2h", "test_metric": "opens"}  # fmt: skip
    one = client.form("/admin/campaigns", {**form, "subjects": ["Alone", "", ""]})
    assert one.status_code == 422 and "needs 2 or 3 subject lines, got 1" in one.text
    big = client.form("/admin/campaigns", {**form, "test_share": "60"})
    assert big.status_code == 422 and "the sample would be 120 % of the audience" in big.text
    review = client.form("/admin/campaigns", form)
    assert review.status_code == 200 and 'id="review-subject-test"' in review.text
    assert "A: Alpha" in review.text and "B: Beta" in review.text and "after 2h" in review.text
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 0
    created = client.form("/admin/campaigns", {**form, "confirmed": "1"})
    assert created.status_code == 303 and created.headers["location"].endswith("done=started")
    cid = int(created.headers["location"].split("/")[3].split("?")[0])
    page = client.get(f"/admin/campaigns/{cid}").text
    assert 'id="subject-test"' in page and "(4 recipients each)" in page
    assert "The winner is picked at" in page and "the other 12 recipients wait" in page

    clock = FakeClock()
    _send_what_is_due(db, settings, MemoryMessenger(), clock)
    with db.session() as session:
        decision = abtest.decide(cid, session=session, now=clock(), force=True)
    assert decision is not None and decision.winner == 1 and decision.released > 0
    page = client.get(f"/admin/campaigns/{cid}").text
    decided = page[page.index('id="subject-test-decision"') :]
    assert "A kept: the subjects tied" in decided and "Too few opens to tell" in decided
    assert "winner</span>" in page and "sent “Alpha”" in page
