"""End to end: Issue 42 over SMTP to a real relay, a bounce back through ``bounces serve``,
the ledger row bounced, the address suppressed, and the report (library, CLI) counting it."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

from sqlalchemy import select

from newsletter.bounces.apply import BounceProcessor
from newsletter.bounces.receiver import BounceServer
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import Delivery, Subscriber, Suppression
from newsletter.sending import campaigns, service
from newsletter.subscribers.suppression import is_suppressed
from newsletter.testing.bounce_mail import arf, dsn
from newsletter.testing.smtp_sink import SmtpSink
from tests.sending_helpers import add_subscribers
from tests.test_cli import run_here as run


def test_smtp_campaign_bounce_and_complaint_come_back_into_the_report(
    issue42: Database, settings: Settings, tmp_path: Path
) -> None:
    with issue42.session() as session:
        add_subscribers(session, 6)
    with SmtpSink() as relay:
        smtp = settings.model_copy(
            update={"transport": "smtp", "smtp_host": relay.host, "smtp_port": relay.port,
                    "from_email": "news@example.org", "bounce_domain": "bounces.example.org"}
        )  # fmt: skip
        with issue42.session() as session:
            cid = campaigns.create_campaign(42, session=session).id
        assert service.start(issue42, smtp, cid)
        assert service.drain(issue42, smtp, cid).accepted == 6
        envelope = {m.rcpt_tos[0]: m.mail_from for m in relay.messages}
    assert len(set(envelope.values())) == 6
    assert all(
        s.startswith("bounces+") and s.endswith("@bounces.example.org") for s in envelope.values()
    )

    dead, annoyed = "user3@example.org", "user4@example.org"
    receiver = BounceServer(BounceProcessor(issue42, smtp), host="127.0.0.1", port=0)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as client:
            client.sendmail("", [envelope[dead]], dsn(envelope[dead], dead))
            client.sendmail("", ["fbl@bounces.example.org"],
                            arf("fbl@bounces.example.org", annoyed, return_path=envelope[annoyed]))  # fmt: skip
    finally:
        receiver.stop()

    with issue42.session() as session:
        statuses = dict(
            session.execute(
                select(Subscriber.email, Delivery.status).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
        assert statuses[dead] == "bounced" and statuses[annoyed] == "accepted"
        assert is_suppressed(dead, session=session) and is_suppressed(annoyed, session=session)
        assert len(session.scalars(select(Suppression)).all()) == 2
        report = campaigns.campaign_report(cid, session=session, with_recipients=False)
    assert (
        report.counts["bounced"] == 1 and report.counts["accepted"] == 5 and report.complained == 1
    )
    assert report.rates["bounce_rate"] == round(1 / 6, 4) and report.rates[
        "complaint_rate"
    ] == round(1 / 6, 4)

    env = {"NEWSLETTER_DATABASE_URL": settings.database_url}
    if settings.database_schema:
        env["NEWSLETTER_DATABASE_SCHEMA"] = settings.database_schema
    shown = run("campaign", "report", str(cid), "--json", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["counts"]["bounced"], data["complained"]) == (1, 1)
    text = run("campaign", "report", str(cid), cwd=tmp_path, env=env).stdout
    assert "bounced 1" in text and "complained 1" in text and "complaint rate 16.7%" in text
