"""Issue results, on both backends: Issue 42 sent through the memory transport, clicks stored
by the real recorder (``engagement.store_hits``), SendGrid clicks as the webhook stores them."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.insights.results import NO_TOPIC, issue_results, sort_rows
from newsletter.models import Campaign, Delivery, IssueLink, utcnow
from newsletter.models.sending import TrackingEvent
from tests.insights_helpers import Sent, send_issue42


@pytest.fixture
def sent(issue42: Database, settings: Settings) -> Sent:
    return send_issue42(issue42, settings)


def _resource_link(sent: Sent, section: str) -> IssueLink:
    return next(
        link for _pos, link in sorted(sent.links.items())
        if link.section_heading == section and link.resource_id is not None
    )  # fmt: skip


def test_each_link_and_resource_counts_unique_readers_clicks_machines_and_topics(
    sent: Sent,
) -> None:
    equity = _resource_link(sent, "Equity in Practice")
    policy = _resource_link(sent, "Policy & ESSA")
    sent.click("eq0@example.org", equity.position, times=3)
    sent.click("eq1@example.org", equity.position)
    sent.click("all0@example.org", equity.position)
    sent.click("pol0@example.org", equity.position, head=True)  # a scanner: machine
    sent.click("pol1@example.org", policy.position)
    with sent.db.session() as session:
        found = issue_results(session, campaign_id=sent.campaign_id)
    assert found.delivered == 6  # the memory transport: accepted counts as reached
    assert found.topics == {"Equity": 2, "Policy & ESSA": 2, NO_TOPIC: 2}
    row = next(r for r in found.links if r.position == equity.position)
    assert (row.clickers, row.clicks, row.machine_clicks) == (3, 5, 1)
    assert row.ctr == 0.5
    assert (row.topics["Equity"].clickers, row.topics["Equity"].clicks) == (2, 4)
    assert row.topics["Equity"].ctr == 1.0
    assert row.topics[NO_TOPIC].clickers == 1
    assert (row.topics["Policy & ESSA"].clickers, row.topics["Policy & ESSA"].machine_clicks) \
        == (0, 1)  # fmt: skip
    # The resource's title link and its call to action: one reader clicking both is one.
    cta = [p for p, link in sent.links.items()
           if link.resource_id == equity.resource_id and p != equity.position]  # fmt: skip
    assert cta, "the seed item has a call to action linking to the same article"
    sent.click("eq0@example.org", cta[0])
    with sent.db.session() as session:
        found = issue_results(session, campaign_id=sent.campaign_id)
    resource = next(r for r in found.resources if r.resource_id == equity.resource_id)
    assert (resource.clickers, resource.clicks, resource.machine_clicks) == (3, 6, 1)
    assert found.share(next(r for r in found.links if r.position == equity.position)) == round(
        5 / 7, 4
    )
    by_ctr = sort_rows(found.links, "ctr", descending=True)
    assert by_ctr[0].position == equity.position
    assert [r.position for r in sort_rows(found.links, "nonsense", descending=False)] == sorted(
        sent.links
    )


def test_sendgrid_clicks_on_issue_links_count_and_redirect_urls_do_not(sent: Sent) -> None:
    policy = _resource_link(sent, "Policy & ESSA")
    with sent.db.session() as session:
        session.execute(update(Campaign).values(transport="sendgrid"))
        session.execute(update(Delivery).where(Delivery.id.in_(
            [sent.ledger["eq0@example.org"], sent.ledger["pol0@example.org"]]
        )).values(status="delivered"))  # fmt: skip
        events = [
            ("e1", "eq0@example.org", policy.url), ("e2", "eq0@example.org", policy.url),
            ("e3", "pol0@example.org", policy.url),
            ("e4", "pol0@example.org", f"{sent.settings.base_url}/r/abc"),  # our redirect
        ]  # fmt: skip
        for event_id, email, url in events:
            session.add(TrackingEvent(
                event_id=event_id, event="click", delivery_id=sent.ledger[email],
                campaign_id=sent.campaign_id, occurred_at=utcnow(), detail=url,
            ))  # fmt: skip
    with sent.db.session() as session:
        found = issue_results(session, campaign_id=sent.campaign_id)
    assert found.delivered == 2  # SendGrid reports deliveries: only the delivered count
    row = next(r for r in found.links if r.position == policy.position)
    assert (row.clickers, row.clicks, row.machine_clicks, row.ctr) == (2, 3, 0, 1.0)
    resource = next(r for r in found.resources if r.resource_id == policy.resource_id)
    assert (resource.clickers, resource.clicks) == (2, 3)
    assert sum(r.clicks for r in found.links) == 3


def _invoke(settings: Settings, *args: str) -> Any:
    env = {"NEWSLETTER_DATABASE_URL": settings.database_url,
           "NEWSLETTER_VAR_DIR": str(settings.var_dir),
           "NEWSLETTER_SECRET_KEY": "test-secret-key-not-default"}  # fmt: skip
    if settings.database_schema:
        env["NEWSLETTER_DATABASE_SCHEMA"] = settings.database_schema
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize(
    "backend", ["sqlite"], indirect=True
)  # the CLI/page over queries tested on both
def test_campaign_report_json_and_csv(sent: Sent, tmp_path: Any) -> None:
    equity = _resource_link(sent, "Equity in Practice")
    sent.click("eq0@example.org", equity.position, times=2)
    result = _invoke(sent.settings, "campaign", "report", str(sent.campaign_id), "--json",
                     "--no-recipients")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    link = next(r for r in data["results"]["links"] if r["position"] == equity.position)
    assert (link["unique_clickers"], link["clicks"], link["ctr"]) == (1, 2, round(1 / 6, 4))
    assert link["topics"]["Equity"]["ctr"] == 0.5
    out = tmp_path / "results.csv"
    result = _invoke(sent.settings, "campaign", "report", str(sent.campaign_id),
                     "--no-recipients", "--csv", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{equity.position}" in result.stdout and "CTR" in result.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    mine = [r for r in rows if r["kind"] == "link" and r["position"] == str(equity.position)]
    assert {r["topic"]: r["unique_clickers"] for r in mine} == {
        "all": "1", "Equity": "1", "Policy & ESSA": "0", NO_TOPIC: "0"
    }  # fmt: skip
    assert {r["kind"] for r in rows} == {"link", "resource"}


@pytest.mark.parametrize(
    "backend", ["sqlite"], indirect=True
)  # the CLI/page over queries tested on both
def test_admin_report_sorts_by_column_links_slices_by_topic_and_downloads_csv(
    sent: Sent,
) -> None:
    from tests.admin_helpers import signed_in_client

    equity = _resource_link(sent, "Equity in Practice")
    policy = _resource_link(sent, "Policy & ESSA")
    sent.click("eq0@example.org", equity.position, times=2)
    sent.click("pol0@example.org", policy.position)
    sent.click("pol1@example.org", policy.position)
    client = signed_in_client(sent.db, sent.settings, "admin")
    base = f"/admin/campaigns/{sent.campaign_id}"
    page = client.get(base)
    assert page.status_code == 200 and "Links and resources" in page.text
    assert 'aria-sort="ascending"' in page.text  # by position until a header is pressed
    by_clickers = client.get(f"{base}?sort=clickers&dir=desc").text
    table = by_clickers[by_clickers.index('id="results-links"') :]
    order = [int(p) for p in re.findall(r'data-position="(\d+)"', table.split("</table>")[0])]
    assert order[:2] == [policy.position, equity.position]
    assert "sort=clickers&amp;dir=asc" in by_clickers  # pressing it again reverses
    sliced = client.get(f"{base}?sort=clickers&dir=desc&topic=Equity").text
    table = sliced[sliced.index('id="results-links"') :].split("</table>")[0]
    assert re.findall(r'data-position="(\d+)"', table)[0] == str(equity.position)
    answer = client.get(f"{base}/results.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert any(r["position"] == str(policy.position) and r["topic"] == "Policy & ESSA"
               and r["unique_clickers"] == "2" for r in rows)  # fmt: skip
    assert client.get("/admin/campaigns/999/results.csv").status_code == 404


# --- the library remembers -------------------------------------------------------------------


def test_each_resource_knows_its_issues_and_lifetime_clicks(sent: Sent) -> None:
    from newsletter.insights import history

    equity = _resource_link(sent, "Equity in Practice")
    sent.click("eq0@example.org", equity.position, times=2)
    sent.click("pol1@example.org", equity.position)
    with sent.db.session() as session:
        numbers = history.lifetime(session, [equity.resource_id])[equity.resource_id]
        featured = history.featured_in(session, [equity.resource_id])[equity.resource_id]
        everything = history.lifetime(session)
    assert (numbers.clickers, numbers.clicks, numbers.delivered) == (2, 3, 6)
    assert numbers.ctr == round(2 / 6, 4) and numbers.campaigns == {sent.campaign_id}
    assert [(f.number, f.state) for f in featured] == [(42, "sent")]
    assert everything[equity.resource_id].clickers == 2 and len(everything) >= 4
    result = _invoke(sent.settings, "resources", "show", str(equity.resource_id))
    assert result.exit_code == 0, result.output
    assert "featured in: 42 (Issue 42: April 2018, sent)" in result.output
    assert "2 readers clicked (3 clicks, 0 by machines) of 6 reached" in result.output
    assert "click-through 33.3%" in result.output


def test_library_filters_never_recent_dead_and_sorts_by_click_through(sent: Sent) -> None:
    from newsletter.models import Resource
    from tests.admin_helpers import signed_in_client

    equity = _resource_link(sent, "Equity in Practice")
    policy = _resource_link(sent, "Policy & ESSA")
    sent.click("eq0@example.org", equity.position)
    sent.click("eq1@example.org", equity.position)
    sent.click("pol0@example.org", policy.position)
    featured = {link.resource_id for link in sent.links.values() if link.resource_id}
    with sent.db.session() as session:
        everyone = set(session.scalars(select(Resource.id)))
        dead = min(everyone - featured)
        session.execute(update(Resource).where(Resource.id == dead).values(link_status="dead"))
    client = signed_in_client(sent.db, sent.settings, "admin")

    def ids(query: str) -> list[int]:
        page = client.get(f"/admin/library?{query}")
        assert page.status_code == 200
        return [int(i) for i in re.findall(r'<a href="/admin/library/(\d+)">', page.text)]

    never = set(ids("featured=never"))
    assert never and not never & featured and never <= everyone - featured
    assert set(ids("featured=recent")) == featured
    assert ids("health=dead") == [dead]
    ranked = ids("featured=recent&sort=ctr")
    assert ranked[:2] == [equity.resource_id, policy.resource_id]
    detail = client.get(f"/admin/library/{equity.resource_id}").text
    assert "Issue 42: April 2018" in detail and 'id="lifetime"' in detail
    assert "33.3" in detail  # 2 of 6 reached


# --- drafting help ---------------------------------------------------------------------------


def test_the_next_title_is_renumbered_and_redated() -> None:
    from datetime import date

    from newsletter.insights.proposals import add_months, percent, retitle

    assert retitle("Issue 42: April 2018", 42, 43, date(2018, 5, 1)) == "Issue 43: May 2018"
    assert retitle("No. 9 - December 2019", 9, 10, add_months(date(2019, 12, 31), 1)) == (
        "No. 10 - January 2020"
    )
    assert add_months(date(2020, 1, 31), 1) == date(2020, 2, 29)
    assert (percent(0.08), percent(0.004), percent(0.0)) == ("8 %", "0.4 %", "0 %")


def _add_resource(sent: Sent, title: str, topics: tuple[str, ...]) -> int:
    from newsletter.resources import library
    from newsletter.resources.records import ResourceRecord

    record = ResourceRecord(title=title, url=f"https://example.org/{len(title)}", summary="New.",
                            topics=topics, origin="test")  # fmt: skip
    with sent.db.session() as session:
        return library.add_resource(record, session=session, topics=[]).id


def test_new_issue_proposes_number_title_and_ranked_unticked_resources(sent: Sent) -> None:
    from datetime import date, datetime

    from newsletter.insights import proposals
    from newsletter.models import Issue, Schedule
    from tests.admin_helpers import signed_in_client

    equity = _resource_link(sent, "Equity in Practice")
    sent.click("eq0@example.org", equity.position)
    sent.click("eq1@example.org", equity.position)  # its resource's topics: 2 of 6 clicked
    plain = _add_resource(sent, "A note with no history", ("Assessment",))
    liked = _add_resource(sent, "An equity study", ("English Language Learners",))
    with sent.db.session() as session:
        proposed = proposals.next_issue(session, today=date(2026, 1, 1))
        found = proposals.candidates(session)
    assert (proposed.number, proposed.title, proposed.issue_date) == (
        43, "Issue 43: May 2018", date(2018, 5, 1))  # fmt: skip
    assert [c.resource.id for c in found] == [liked, plain]  # nothing featured is proposed
    assert found[0].reasons == ["new since Issue 42", "topic English Language Learners: 33 % CTR"]
    assert found[1].reasons == ["new since Issue 42"]
    client = signed_in_client(sent.db, sent.settings, "admin")
    page = client.get("/admin/issues").text
    assert 'value="Issue 43: May 2018"' in page and 'value="2018-05-01"' in page
    assert f'id="propose-{liked}"' in page and "checked" not in page.split('id="proposals"')[1]
    assert "topic English Language Learners: 33 % CTR" in page
    created = client.form("/admin/issues", {
        "number": "43", "date": "2018-05-01", "title": "Issue 43: May 2018",
        "subject": "May", "resources": str(liked),
    })  # fmt: skip
    assert created.status_code == 303, created.text
    with sent.db.session() as session:
        issue = session.scalars(select(Issue).where(Issue.number == 43)).one()
        assert [(s.heading, [i.resource_id for i in s.items]) for s in issue.sections] == [
            ("English Language Learners", [liked])]  # fmt: skip
        session.add(Schedule(name="monthly", rule={"kind": "monthly"}, timezone="UTC",
                             next_run_at=datetime(2018, 6, 12, 9, tzinfo=UTC)))  # fmt: skip
    with sent.db.session() as session:
        scheduled = proposals.next_issue(session, today=date(2026, 1, 1))
    assert (scheduled.number, scheduled.issue_date, scheduled.title) == (
        44, date(2018, 6, 12), "Issue 44: June 2018")  # fmt: skip
    # The picker warns about a resource issue 42 featured; the CLI too.
    picker = client.get("/admin/issues/43/picker?q=Distinctive").text
    assert "already featured in Issue 42" in picker
    result = _invoke(sent.settings, "issue", "add-item", "43", "--section", "Equity",
                     "--resource", str(equity.resource_id))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"resource #{equity.resource_id} already featured in Issue 42" in result.output


@pytest.mark.parametrize(
    "backend", ["sqlite"], indirect=True
)  # the CLI/page over queries tested on both
def test_issue_propose_and_new_from_the_cli(sent: Sent) -> None:
    liked = _add_resource(sent, "An equity study", ("Equity",))
    result = _invoke(sent.settings, "issue", "propose", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["next"]["title"] == "Issue 43: May 2018"
    assert [c["id"] for c in data["candidates"]] == [liked]
    result = _invoke(sent.settings, "issue", "new")
    assert result.exit_code == 0, result.output
    assert "created Issue 43 (issue-43-may-2018)" in result.output
    with sent.db.session() as session:
        from newsletter.models import Issue

        issue = session.scalars(select(Issue).where(Issue.number == 43)).one()
        assert issue.sections == []  # nothing chosen without the editor


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_issue_results_add_up_every_campaign_of_the_issue(sent: Sent) -> None:
    from newsletter.sending import campaigns, service
    from newsletter.transports import MemoryMessenger

    equity = _resource_link(sent, "Equity in Practice")
    sent.click("eq0@example.org", equity.position)
    with sent.db.session() as session:
        again = campaigns.create_campaign(42, session=session, resend=True).id
    assert service.start(sent.db, sent.settings, again)
    service.drain(sent.db, sent.settings, again, messenger=MemoryMessenger())
    with sent.db.session() as session:
        second = session.scalars(select(Delivery.id).where(
            Delivery.campaign_id == again)).first()  # fmt: skip
    assert second is not None
    sent.ledger = {"second@x": second}
    sent.click("second@x", equity.position, times=2)
    result = _invoke(sent.settings, "issue", "results", "42", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["campaigns"] == [sent.campaign_id, again] and data["delivered"] == 12
    link = next(r for r in data["links"] if r["position"] == equity.position)
    assert (link["unique_clickers"], link["clicks"], link["ctr"]) == (2, 3, round(2 / 12, 4))
