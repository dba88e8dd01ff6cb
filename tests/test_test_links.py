"""Test sends and previews lead to real pages, and no route answers a browser with raw JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues.preview import sample_values
from newsletter.models import Subscriber
from newsletter.sending import service
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.sending_helpers import add_subscribers

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def client(issue42: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, issue42, messenger=MemoryMessenger())) as test_client:
        yield test_client


def _local(url: str, settings: Settings) -> str:
    return url.removeprefix(settings.base_url.rstrip("/"))


def _test_send_links(db: Database, settings: Settings) -> dict[str, str]:
    messenger = MemoryMessenger()
    result = service.send_test(db, settings, 42, "editor@example.org", messenger=messenger)
    assert result.results[0].outcome == "accepted"
    email = messenger.sent[0].email_message
    hrefs = re.findall(r'href="([^"]+)"', email.html)
    return {
        "header": _local(email.headers["List-Unsubscribe"].strip("<>"), settings),
        "unsubscribe": _local(next(h for h in hrefs if "unsubscribe" in h), settings),
        "preferences": _local(next(h for h in hrefs if "preferences" in h), settings),
    }


def test_a_test_sends_links_lead_to_pages_that_say_it_was_a_test(
    client: TestClient, issue42: Database, settings: Settings
) -> None:
    with issue42.session() as session:
        add_subscribers(session, 3)
    links = _test_send_links(issue42, settings)
    for name, path in links.items():
        page = client.get(path, headers=BROWSER)
        assert page.status_code == 200, (name, path)
        assert page.headers["content-type"].startswith("text/html")
        assert "This was a test email" in page.text
    one_click = client.post(links["header"], data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "Nothing was changed" in one_click.text
    with issue42.session() as session:
        statuses = session.scalars(select(Subscriber.status)).all()
    assert statuses == ["confirmed"] * 3  # nobody was unsubscribed


def test_preview_sample_links_are_the_same_real_pages(
    client: TestClient, settings: Settings
) -> None:
    values = sample_values(settings.base_url, 42)
    for key in ("unsubscribe_url", "preferences_url"):
        page = client.get(_local(values[key], settings), headers=BROWSER)
        assert page.status_code == 200 and "This was a test email" in page.text, key
    unsent = client.get(_local(values["web_url"], settings), headers=BROWSER)
    assert unsent.status_code == 404 and "appear here once they have been sent" in unsent.text


def _routes_without_parameters(client: TestClient) -> list[str]:
    routes = [r for r in client.app.routes if isinstance(r, APIRoute)]  # type: ignore[attr-defined]
    return [r.path for r in routes if "GET" in r.methods and "{" not in r.path]


def test_no_route_answers_a_browser_with_raw_json(client: TestClient) -> None:
    probes = [
        ("GET", "/unsubscribe/sample-token"),
        ("GET", "/no-such-page"),
        ("GET", "/admin/no-such-page"),
        ("GET", "/api/no-such-endpoint"),
        ("GET", "/webhooks/sendgrid"),
        ("DELETE", "/subscribe"),
        ("GET", "/u/forged-token"),
        ("GET", "/archive/999"),
        *(("GET", path) for path in _routes_without_parameters(client)),
    ]
    for method, path in probes:
        response = client.request(method, path, headers=BROWSER, follow_redirects=True)
        kind = response.headers.get("content-type", "")
        assert not kind.startswith("application/json"), (method, path, response.text[:200])


def test_programs_still_get_json_from_the_api(client: TestClient) -> None:
    response = client.get("/api/no-such-endpoint", headers={"accept": "application/json"})
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "Page not found" in page.text
    with client.app.state.web.db.session() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
