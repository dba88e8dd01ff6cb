"""A realistic site for browser checks that visit every page: one server and one browser per module.

The data an editor and an admin see after a month of use: the seed library,
Issue 42 sent to subscribers by a real campaign (so the archive and a report
exist), Issue 43 made from the same resources, ready and scheduled (so still
editable), subscribers in every state (one with a consent trail), two accounts.
Every page of the app can then be reached with real ids and real tokens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.admin import users
from newsletter.config import Settings, load_settings
from newsletter.db import Database, connect
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.models import Campaign, Resource, Subscriber
from newsletter.resources.classify import normalise_url
from newsletter.resources.records import ResourceRecord
from newsletter.scheduling import admin as scheduling
from newsletter.sending import abtest, campaigns, service
from newsletter.subscribers import links
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.service import SignupRequest
from newsletter.subscribers.store import Actor
from tests.browser_helpers import CHROMIUM_ARGS, chromium, free_port, serve
from tests.issue_helpers import ISSUE_42, import_library
from tests.sending_helpers import add_subscribers

PASSWORD = "correct horse battery staple"
EDITOR = "editor@example.org"
ADMIN = "admin@example.org"
BLOCKING = {"serious", "critical"}  # axe impacts that fail a test
PLACEHOLDER_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="800" height="500">'
    b'<rect width="800" height="500" fill="#7f9fb3"/></svg>'
)


@dataclass
class Site:
    url: str
    db: Database
    settings: Settings
    app: Any
    ids: dict[str, int] = field(default_factory=dict)  # path parameter -> a real value
    tokens: dict[str, str] = field(default_factory=dict)  # public page -> a real token path


@contextmanager
def isolated_env(folder: Path) -> Iterator[None]:
    """Module fixtures run before the per-test isolation: no NEWSLETTER_* variable, no toml."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("NEWSLETTER_") and key != "NEWSLETTER_TEST_PG_URL":
                patch.delenv(key)
        patch.chdir(folder)
        yield


def site_settings(folder: Path, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{folder / 'var' / 'site.db'}",
        "var_dir": folder / "var",
        "secret_key": "test-secret-key-not-default",
        "debug": True,
        "base_url": f"http://127.0.0.1:{port}",
        "preflight_fetch_images": False,  # Issue 42's images are on the internet
    }
    return load_settings(**{**values, **overrides})


def reader_with_history(session: Any, settings: Settings) -> Subscriber:
    """Signed up, confirmed, changed topics: a consent trail of three events."""
    topics = [t.name for t in settings.topics]
    actor = Actor(source="web:subscribe-form", ip="203.0.113.9", user_agent="Firefox")
    outcome = subscribers.subscribe(
        SignupRequest("ann.lee@example.org", actor, name="Ann Lee", topics=topics[:2]),
        session=session, allowed_topics=topics,
    )  # fmt: skip
    assert outcome.subscriber is not None
    subscribers.confirm(outcome.subscriber, session=session, actor=actor)
    subscribers.update_preferences(
        outcome.subscriber, session=session, actor=Actor(source="web:preferences"),
        allowed_topics=topics, topics=topics[1:3], paused_until=None,
    )  # fmt: skip
    return outcome.subscriber


def _pending_reader(session: Any, settings: Settings) -> Subscriber:
    topics = [t.name for t in settings.topics]
    outcome = subscribers.subscribe(
        SignupRequest("pending@example.org", Actor(source="web:subscribe-form"), topics=topics),
        session=session, allowed_topics=topics,
    )  # fmt: skip
    assert outcome.subscriber is not None
    return outcome.subscriber


def _issue_43() -> Any:
    """Issue 43: Issue 42's resources again, ready (only ready issues may be scheduled)."""
    source = load_source(ISSUE_42)
    return replace(
        source, number=43, title="Issue 43: May 2018", slug="issue-43-may-2018",
        subject="Issue 43: more on personalized learning", status="ready",
        date=source.date + timedelta(days=30),
    )  # fmt: skip


def _finished_import_job(session: Any, seeds: Path) -> int:
    """An editor's library import that finished: its page shows the report."""
    from newsletter import jobs
    from newsletter.models.jobs import JobState
    from newsletter.resources import library

    records, warnings = library.parse_files(sorted(seeds.glob("*.txt")))
    report = library.ImportReport(skipped=warnings, unchanged=[r.title for r in records])
    job = jobs.create(session, kind="import:resources", owner=EDITOR, label="library.txt")
    job.state, job.total, job.done = JobState.DONE, len(records), len(records)
    job.report = {"type": "resources", **report.as_dict(titles=200)}
    session.flush()
    return int(job.id)


def _webhook_with_a_log(session: Any) -> int:
    """A CRM endpoint and its log.  It only wants complaints, which no browser test causes,
    and its one delivery is done: the site's dispatcher never contacts the (public) name."""
    from newsletter.automation.webhooks import outbox, registry
    from newsletter.models import WebhookDelivery

    now = datetime.now(UTC)
    endpoint, _ = registry.create_endpoint(
        session, "https://crm.example.org/hooks/newsletter", ["message.complained"],
        allow_private=False, actor=ADMIN, now=now, description="CRM sync",
        resolve=lambda host, port: ["93.184.216.34"],
    )  # fmt: skip
    delivery = session.get(
        WebhookDelivery, outbox.send_test(session, endpoint, actor=ADMIN, now=now)
    )
    delivery.status, delivery.last_status, delivery.attempts = "delivered", 200, 1
    delivery.response_excerpt, delivery.delivered_at = '{"ok": true}', now
    endpoint.failing_since, endpoint.last_error = now, "HTTP 503: upstream unavailable"
    session.flush()
    return int(endpoint.id)


def _welcome_sequence(session: Any) -> int:
    """A welcome series of two steps (its results table on the sequence page)."""
    from newsletter.automation import sequences

    now = datetime.now(UTC)
    seq = sequences.create_sequence(session, "Welcome", "confirmed", topics=[], now=now)
    sequences.add_step(session, seq.id, 42, delay_minutes=0, now=now)
    sequences.add_step(session, seq.id, 42, delay_minutes=3 * 1440, now=now)
    return int(seq.id)


def _edited_with_an_image(session: Any, settings: Settings) -> int:
    """Issue 43 with a history (a details change, then an uploaded image on its first item)."""
    from newsletter.issues import revisions
    from newsletter.issues.store import get_issue
    from newsletter.media import library as media
    from newsletter.media.storage import storage_for
    from tests.editing_helpers import png

    issue = get_issue(43, session=session)
    revisions.baseline(issue, author=EDITOR, session=session)
    issue.preheader = "Designing schools for equity, and a podcast on ESSA"
    first = revisions.record(issue, "edited the details", author=EDITOR, session=session)
    storage = storage_for(settings)
    row = media.keep(png(900, 600), "classroom.png", origin="upload", author=EDITOR,
                     storage=storage, session=session)  # fmt: skip
    item = issue.sections[0].items[0]
    media.use_on_item(issue, item.id, row, "Students at a table", storage=storage,
                      session=session)  # fmt: skip
    revisions.record(issue, "put an image on an item", author=EDITOR, session=session)
    assert first is not None
    return int(first.id)


def _library_inbox(session: Any) -> None:
    """A feed polled once (two items waiting, one rejected) and two links found dead and moved."""
    from newsletter.sources import inbox, poll
    from newsletter.sources import registry as sources

    now = datetime.now(UTC)
    source = sources.add_source("https://example.org/feed.xml", session=session,
                                every_minutes=360, now=now, actor=EDITOR)  # fmt: skip
    records = [ResourceRecord(title=f"Feed item {n}", url=f"https://example.org/feed/{n}",
                              summary="What the feed said about it.") for n in range(3)]  # fmt: skip
    poll.store_new(source.id, records, session=session, now=now)
    source.kind, source.last_result, source.last_polled_at = "feed", "ok", now
    source.last_message, source.last_added = "3 new, 0 already known", 3
    session.flush()
    inbox.reject([inbox.list_items(session=session)[-1].id], session=session, actor=EDITOR,
                 now=now)  # fmt: skip
    rows = session.scalars(select(Resource).order_by(Resource.id).limit(2)).all()
    for row, status in zip(rows, ("dead", "moved"), strict=True):
        row.url = f"https://example.org/{row.slug}"
        row.url_key = normalise_url(row.url)
        row.link_status, row.link_checked_at = status, now
        row.link_detail = "HTTP 404" if status == "dead" else "HTTP 200 after 1 redirect"
        row.link_final_url = "https://example.org/moved-here" if status == "moved" else None


def populate(db: Database, settings: Settings, seeds: Path) -> dict[str, Any]:
    """Everything the pages show; returns the ids and subscribers the routes need."""
    with db.session() as session:
        import_library(seeds, session=session, settings=settings)
        import_source(replace(load_source(ISSUE_42), status="ready"), session=session)
        import_source(_issue_43(), session=session)
        users.add_user(EDITOR, PASSWORD, "editor", session=session)
        users.add_user(ADMIN, PASSWORD, "admin", session=session)
        add_subscribers(session, 16, topics=("Equity",), prefix="reader")
        add_subscribers(session, 8, prefix="friend")
        ann = reader_with_history(session, settings)
        pending = _pending_reader(session, settings)
        sent = campaigns.create_campaign(42, session=session).id
        resource = session.scalars(select(Resource.id).order_by(Resource.id)).first()
    service.start(db, settings, sent)
    service.drain(db, settings, sent)  # through the outbox: Issue 42 is in the archive now
    with db.session() as session:
        later = datetime.now(UTC) + timedelta(days=7)
        scheduled = scheduling.schedule_issue(
            session, 43, at=later, now=datetime.now(UTC), name="Issue 43 for equity readers",
            topics=["Equity", "English Language Learners", "Students with Disabilities"],
            grace_seconds=3600,
            subject_test=abtest.make_plan(["Issue 43: equity by design", "Five equity reads"]),
        ).id  # fmt: skip
        scheduling.add_recurring(session, rule_text="first tuesday 09:00",
                                 tz_name=settings.timezone, now=datetime.now(UTC),
                                 topics=["Equity"])  # fmt: skip
        assert session.get(Campaign, sent) is not None
        ann = session.get(Subscriber, ann.id)
        pending = session.get(Subscriber, pending.id)
        tokens = {
            "confirm": links.confirm_url(settings, pending),
            "preferences": links.preferences_url(settings, ann),
            "unsubscribe": links.unsubscribe_url(settings, ann),
        }
        job = _finished_import_job(session, seeds)
        endpoint = _webhook_with_a_log(session)
        sequence = _welcome_sequence(session)
        revision = _edited_with_an_image(session, settings)
        _library_inbox(session)
        ids = {"campaign_id": sent, "scheduled_id": scheduled, "subscriber_id": ann.id,
               "resource_id": resource or 1, "job_id": job, "endpoint_id": endpoint,
               "sequence_id": sequence, "revision_id": revision}  # fmt: skip
    return {"ids": ids, "tokens": tokens}


@contextmanager
def running_site(folder: Path, seeds: Path, **overrides: Any) -> Iterator[Site]:
    """The populated app served by uvicorn on a free port."""
    from newsletter.web import create_app

    port = free_port()
    settings = site_settings(folder, port, **overrides)
    db = connect(settings)
    try:
        data = populate(db, settings, seeds)
        app = create_app(settings, db)
        with serve(app, port) as url:
            yield Site(url, db, settings, app, ids=data["ids"], tokens=data["tokens"])
    finally:
        db.dispose()


def offline(route: Any) -> None:
    """The email's remote (https) images get a placeholder; nothing else leaves the machine."""
    if route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/svg+xml", body=PLACEHOLDER_SVG)
    else:
        route.abort()


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """The system Chromium, headless, for one module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, one line per element."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}) at {node['target']}: {node.get('failureSummary', '')[:160]}"
        for v in found
        if v["impact"] in BLOCKING
        for node in v["nodes"]
    ]


def new_page(browser: Any, viewport: dict[str, int], **options: Any) -> Any:
    context = browser.new_context(viewport=viewport, **options)
    context.route("https://**/*", offline)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def sign_in(page: Any, site: Site, email: str) -> None:
    page.goto(site.url + "/admin/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin")
