"""Wiring for entry points: build a worker, start campaigns, send tests, from settings.

Entry points (CLI, web, scheduler) call these few functions and stay thin;
everything here is composition, the logic lives in ``engine``, ``campaigns``
and ``sqlstore``.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from newsletter.config import Settings
from newsletter.db import Database, unavailable_as_error
from newsletter.deliverability import sunset
from newsletter.deliverability.engagement import engagement_sql
from newsletter.deliverability.pacing import pacer_from
from newsletter.deliverability.warmup import plan_from
from newsletter.message import Template
from newsletter.models.sending import CampaignStatus, TestSend
from newsletter.sending import campaigns
from newsletter.sending.engine import Hook, Policy, Worker, WorkerStats, system_now
from newsletter.sending.prepare import IssuePreparer
from newsletter.sending.review import Review
from newsletter.sending.review import review as build_review
from newsletter.sending.sqlstore import SqlStore
from newsletter.transports import Messenger, build_messenger, sender_from, signer_for
from newsletter.transports.base import BatchResult, MessageBatch, Recipient


def worker_id() -> str:
    """Unique per process and machine, readable in ``campaign report`` and logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def policy_from(settings: Settings) -> Policy:
    return Policy(
        rate_per_second=settings.rate_limit_per_second,
        max_consecutive_failures=settings.max_consecutive_failures,
    )


def preparer_for(db: Database, settings: Settings) -> IssuePreparer:
    """The preparer for sends and test sends; resolves the signing key first, so a refused
    key (the shipped placeholder outside debug) stops a test send as it would a campaign."""
    settings.keyring  # noqa: B018 - resolving is the check
    return IssuePreparer(db=db, settings=settings, sender=sender_from(settings))


@contextmanager
def open_worker(
    db: Database,
    settings: Settings,
    *,
    messenger: Messenger | None = None,
    hook: Hook | None = None,
    clock: Callable[[], datetime] = system_now,
) -> Iterator[Worker]:
    """A worker with its store and messenger, closed on exit."""
    store = SqlStore(db, worker_id=worker_id())
    own_messenger = messenger is None
    active = messenger or build_messenger(settings)
    try:
        yield Worker(
            store=store,
            messenger=active,
            prepare=preparer_for(db, settings),
            policy=policy_from(settings),
            clock=clock,
            hook=hook,
            pacer=pacer_from(settings),
            warmup=plan_from(settings),
        )
    finally:
        store.close()
        if own_messenger:
            active.close()


def campaign_finished(db: Database, campaign_id: int) -> Callable[[], bool]:
    """A ``Worker.run(until=...)`` predicate: the campaign left the sending state."""

    def done() -> bool:
        with unavailable_as_error(), db.session() as session:
            status = campaigns.get_campaign(campaign_id, session=session).status
        return status != CampaignStatus.SENDING

    return done


def drain(
    db: Database,
    settings: Settings,
    campaign_id: int,
    *,
    messenger: Messenger | None = None,
    stop: threading.Event | None = None,
) -> WorkerStats:
    """Send a campaign to the end in this process (the embedded default's one worker)."""
    with open_worker(db, settings, messenger=messenger) as worker:
        return worker.run(stop or threading.Event(), until=campaign_finished(db, campaign_id))


def start(
    db: Database, settings: Settings, campaign_id: int, *, now: datetime | None = None
) -> bool:
    """Preflight, freeze the audience and set the campaign sending (idempotent).

    The DKIM keys are loaded first: a campaign whose mail could not be signed
    does not start at all.  The sunset runs first too, so the audience leaves
    out whoever stopped reading.
    """
    signer_for(settings)
    if settings.sunset:
        with db.session() as session:
            sunset.run(session, settings, now=now or system_now())
    checks = preparer_for(db, settings)
    with db.session() as session:
        return campaigns.start_campaign(
            campaign_id,
            session=session,
            checks=checks,
            batch_size=settings.batch_size,
            now=now or system_now(),
            transport=settings.transport,
            engagement=engagement_sql() if settings.warmup else None,
            default_zone=settings.timezone,
        )


def review(
    db: Database,
    settings: Settings,
    issue_number: int,
    topics: list[str],
    *,
    now: datetime,
    exclude: int | None = None,
) -> Review:
    """The review step's facts for sending an issue to an audience (see ``review``)."""
    preparer = preparer_for(db, settings)
    with db.session() as session:
        issue = campaigns.get_issue_by_number(issue_number, session=session)
        rendered = preparer.template(issue.id, frozenset(), tracked=False).source
        found = build_review(issue, topics, rendered, session=session, now=now, exclude=exclude)
        session.expunge_all()  # the page reads the rows after the session closes
    return found


def send_test(
    db: Database,
    settings: Settings,
    issue_number: int,
    to: str,
    *,
    messenger: Messenger | None = None,
) -> BatchResult:
    """The whole issue to one address, marked as a test, outside any campaign ledger."""
    from newsletter.subscribers.addresses import normalise_email
    from newsletter.subscribers.links import test_links

    address = normalise_email(to)
    preparer = preparer_for(db, settings)
    with db.session() as session:
        issue_id = campaigns.get_issue_by_number(issue_number, session=session).id
    template = preparer.template(issue_id, frozenset(), tracked=False)  # no ledger row
    source = template.source
    test = Template.compile(
        type(source)(
            subject=f"[TEST] {source.subject}",
            html=source.html,
            text=source.text,
            headers=source.headers,
        )
    )
    values = {
        "name": "",
        "email": address,
        "web_url": f"{settings.base_url.rstrip('/')}/archive/{issue_number}",
        **test_links(settings.base_url),
    }
    batch = MessageBatch(
        template=test,
        sender=sender_from(settings),
        recipients=[Recipient(ref=f"test-{uuid.uuid4().hex[:8]}", email=address, values=values)],
        custom_args={"test": "1"},
    )
    active = messenger or build_messenger(settings)
    try:
        result = active.send(batch)
    finally:
        if messenger is None:
            active.close()
    outcome = result.results[0]
    with db.session() as session:  # the review step before a send shows the last test
        session.add(TestSend(issue_id=issue_id, email=address, outcome=outcome.outcome,
                             detail=outcome.detail or None))  # fmt: skip
    return result
