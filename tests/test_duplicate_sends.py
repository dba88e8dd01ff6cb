"""An issue goes to an audience once unless an admin explicitly resends; drafts never go.

And once a campaign has sent an issue, the issue shows as sent everywhere.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import DuplicateSendError
from newsletter.scheduling.steps import start_due_campaigns
from newsletter.sending import campaigns, service
from tests.admin_helpers import (
    fast_hashing,  # noqa: F401 - autouse fixture
    load_issue_42,
    signed_in_client,
)
from tests.sending_helpers import add_subscribers
from tests.test_cli import REPO_ROOT, _assert_one_line_error
from tests.test_cli import run_here as run

ISSUE_42 = str(REPO_ROOT / "issues" / "042-2018-04.yaml")


def _setup_cli(cwd: Path, seeds_dir: Path) -> None:
    seeds = [str(p) for p in sorted(seeds_dir.glob("*.txt"))]
    for args in (
        ("resources", "import", *seeds),
        ("issue", "import", ISSUE_42),
        ("subscribers", "import", str(REPO_ROOT / "subscribers" / "demo.csv")),
    ):
        assert run(*args, cwd=cwd).returncode == 0


def test_a_second_send_to_the_same_audience_needs_resend(tmp_path: Path, seeds_dir: Path) -> None:
    _setup_cli(tmp_path, seeds_dir)
    assert run("campaign", "create", "42", cwd=tmp_path).returncode == 0
    assert run("campaign", "create", "42", "--topic", "Equity", cwd=tmp_path).returncode == 0
    assert run("campaign", "start", "1", "--wait", cwd=tmp_path).returncode == 0

    again = run("campaign", "create", "42", cwd=tmp_path)
    _assert_one_line_error(again, "issue 42 already went to everyone", "campaign #1", "--resend")
    # Created before #1 went out: refused when it starts, naming the campaign that sent it.
    late = run("campaign", "start", "2", cwd=tmp_path)
    _assert_one_line_error(late, "already went to everyone in campaign #1")
    report = json.loads(run("campaign", "report", "2", "--json", cwd=tmp_path).stdout)
    assert report["status"] == "draft" and report["total"] == 0  # nobody queued

    resent = run("campaign", "start", "2", "--resend", "--wait", cwd=tmp_path)
    assert resent.returncode == 0 and ": sent" in resent.stdout
    created = run("campaign", "create", "42", "--resend", cwd=tmp_path)
    assert created.returncode == 0 and "campaign #3 created" in created.stdout


def test_a_sent_issue_shows_as_sent_in_the_cli(tmp_path: Path, seeds_dir: Path) -> None:
    _setup_cli(tmp_path, seeds_dir)
    assert run("campaign", "create", "42", cwd=tmp_path).returncode == 0
    assert run("campaign", "start", "1", "--wait", cwd=tmp_path).returncode == 0
    [row] = json.loads(run("issue", "list", "--json", cwd=tmp_path).stdout)
    assert row["status"] == "sent" and row["sent"]
    assert "(sent, 2018-04-01)" in run("issue", "show", "42", cwd=tmp_path).stdout


def test_a_draft_issue_cannot_be_scheduled_or_started(tmp_path: Path, seeds_dir: Path) -> None:
    _setup_cli(tmp_path, seeds_dir)
    new = run("issue", "new", "--number", "43", "--title", "Issue 43: May 2018",
              "--date", "2018-05-01", "--subject", "May", cwd=tmp_path)  # fmt: skip
    assert new.returncode == 0, new.stderr
    scheduled = run("schedule", "43", "--at", "2099-05-01 09:00", cwd=tmp_path)
    _assert_one_line_error(scheduled, "issue 43 is a draft", "issue status 43 ready")
    assert run("campaign", "create", "43", cwd=tmp_path).returncode == 0  # a draft campaign
    _assert_one_line_error(run("campaign", "start", "1", cwd=tmp_path), "issue 43 is a draft")


def test_a_scheduled_send_of_an_issue_sent_meanwhile_is_flagged(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    due = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as session:
        add_subscribers(session, 3)
        later = campaigns.create_campaign(42, session=session, scheduled_at=due).id
    expected = f"is already scheduled to go to everyone in campaign #{later}"
    with db.session() as session, pytest.raises(DuplicateSendError, match=expected):
        campaigns.create_campaign(42, session=session)  # the scheduled one covers everyone
    with db.session() as session:
        now_id = campaigns.create_campaign(42, session=session, resend=True).id
    assert service.start(db, settings, now_id)
    service.drain(db, settings, now_id)

    client = signed_in_client(db, settings, "admin")
    page = client.get(f"/admin/campaigns/{later}").text
    assert 'id="already-sent"' in page and f"campaign #{now_id}" in page
    report = start_due_campaigns(db, settings, due + timedelta(seconds=1))
    assert report.failed == [later]
    with db.session() as session:
        flagged = campaigns.get_campaign(later, session=session)
        assert flagged.status == "failed" and flagged.total_recipients == 0
        assert f"already went to everyone in campaign #{now_id}" in (flagged.status_reason or "")


def test_the_admin_review_warns_and_needs_an_explicit_resend(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, 4)
    client = signed_in_client(db, settings, "admin")
    form = {"issue": "42", "when": "now", "confirmed": "1"}
    first = client.form("/admin/campaigns", form)
    assert first.status_code == 303
    service.drain(db, settings, 1)

    review = client.form("/admin/campaigns", {"issue": "42", "when": "now"})
    assert (
        'id="duplicate-warning"' in review.text and "Already sent to this audience" in review.text
    )
    assert 'name="resend"' in review.text and "required" in review.text
    unconfirmed = client.form("/admin/campaigns", form)
    assert unconfirmed.status_code == 409 and "pass --resend" in unconfirmed.text
    resent = client.form("/admin/campaigns", {**form, "resend": "1"})
    assert resent.status_code == 303
    dashboard = client.get("/admin").text
    assert 'badge-sent">sent' in dashboard
    issues = client.get("/admin/issues").text
    assert 'badge-sent">sent' in issues and 'badge-ready">ready' not in issues


def test_the_review_refuses_a_draft_issue(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, 2)
        campaigns.get_issue_by_number(42, session=session).status = "draft"
    client = signed_in_client(db, settings, "admin")
    review = client.form("/admin/campaigns", {"issue": "42", "when": "now"})
    assert "issue 42 is a draft" in review.text and 'id="confirm-send"' not in review.text


def test_active_and_inactive_audiences_never_overlap(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    """After the active readers had it, re-engaging the inactive is not a second send."""
    load_issue_42(db, settings, seeds_dir)
    with db.session() as session:
        add_subscribers(session, 2)
        first = campaigns.create_campaign(42, session=session).id
    assert service.start(db, settings, first)
    service.drain(db, settings, first)
    with db.session() as session:
        assert campaigns.create_campaign(42, session=session, audience="inactive").id
    with db.session() as session, pytest.raises(DuplicateSendError, match=f"campaign #{first}"):
        campaigns.create_campaign(42, session=session, audience="all")
