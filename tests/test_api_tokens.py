"""Scoped API tokens and /api/v1, on SQLite and PostgreSQL, through the real app.

Every route under /api/v1 is found from the router itself, so a route added
later without a scope fails here: each must answer 401 without a token and
403 with a token that lacks its scope.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.automation import tokens
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.models import ApiToken, Campaign, Issue
from newsletter.transports import MemoryMessenger
from newsletter.web import api_v1, create_app
from tests.sending_helpers import FakeClock, add_subscribers

ALL = list(tokens.SCOPES)


Clock = FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=datetime.now(UTC))


@pytest.fixture
def client(db: Database, settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(settings, db, messenger=MemoryMessenger(), clock=clock)
    with TestClient(app) as test_client:
        yield test_client


def new_token(db: Database, scopes: list[str], *, expires_in: timedelta | None = None) -> str:
    now = datetime.now(UTC)
    with db.session() as session:
        _, token = tokens.create_token(
            session, "test", scopes, expires_at=now + expires_in if expires_in else None,
            actor="test", now=now,
        )  # fmt: skip
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes() -> list[APIRoute]:
    return [r for r in api_v1.router.routes if isinstance(r, APIRoute)]


def scope_of(route: APIRoute) -> str:
    found = [d.call.scope for d in route.dependant.dependencies if isinstance(d.call, api_v1.Scope)]
    assert len(found) == 1, f"{route.path} declares no scope (use api_v1.route(..., scope=))"
    return found[0]


def concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", "1", path)


# --- every route checks its scope --------------------------------------------------------------


def test_every_api_route_declares_a_scope_and_refuses_without_it(
    db: Database, client: TestClient
) -> None:
    routes = api_routes()
    assert len(routes) >= 12
    for route in routes:
        scope = scope_of(route)
        [method] = route.methods
        url = concrete(route.path)
        anonymous = client.request(method, url, json={})
        assert anonymous.status_code == 401, (method, url, anonymous.text)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert list(anonymous.json()) == ["detail"] and "\n" not in anonymous.json()["detail"]
        others = new_token(db, [s for s in ALL if s != scope])
        refused = client.request(method, url, json={}, headers=auth(others))
        assert refused.status_code == 403, (method, url, refused.text)
        assert refused.json() == {"detail": f"this API token lacks the {scope} scope"}
        allowed = client.request(method, url, json={}, headers=auth(new_token(db, [scope])))
        assert allowed.status_code not in (401, 403), (method, url, allowed.text)


def test_the_openapi_document_shows_the_bearer_scheme_and_each_scope(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiToken"] == {
        "type": "http", "scheme": "bearer", "description": api_v1.bearer.model.description,
    }  # fmt: skip
    operations = [
        (path, op) for path, item in spec["paths"].items() if path.startswith("/api/v1/")
        for op in item.values()
    ]  # fmt: skip
    assert len(operations) == len(api_routes())
    for path, op in operations:
        assert op["security"] == [{"apiToken": []}], path
        assert (
            op["x-required-scope"] in tokens.SCOPES and op["x-required-scope"] in op["description"]
        )


# --- what the scopes allow ----------------------------------------------------------------------


def test_a_token_without_campaigns_send_cannot_start_a_campaign(
    issue42: Database, client: TestClient
) -> None:
    db = issue42
    with db.session() as session:
        session.scalars(select(Issue)).one().status = "ready"
        add_subscribers(session, 3)
    sender = new_token(db, ["campaigns:send", "campaigns:read"])
    created = client.post("/api/v1/campaigns", json={"issue": 42}, headers=auth(sender))
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    reader = new_token(db, ["campaigns:read", "subscribers:read", "subscribers:write"])
    refused = client.post(f"/api/v1/campaigns/{campaign_id}/start", headers=auth(reader))
    assert refused.status_code == 403
    with db.session() as session:
        assert session.get(Campaign, campaign_id).status == "draft"  # type: ignore[union-attr]
    started = client.post(f"/api/v1/campaigns/{campaign_id}/start", headers=auth(sender))
    assert started.status_code == 200, started.text
    assert started.json()["started"] is True and started.json()["campaign"]["status"] == "sending"
    report = client.get(f"/api/v1/campaigns/{campaign_id}/report", headers=auth(sender))
    assert report.status_code == 200 and report.json()["total"] == 3


def test_subscribers_through_the_api(db: Database, client: TestClient, settings: Settings) -> None:
    token = new_token(db, ["subscribers:read", "subscribers:write"])
    topic = settings.topics[0].name
    no_consent = client.post(
        "/api/v1/subscribers", json={"email": "ann@example.org", "confirmed": True},
        headers=auth(token),
    )  # fmt: skip
    assert no_consent.status_code == 422 and "consent_text" in no_consent.json()["detail"]
    made = client.post(
        "/api/v1/subscribers",
        json={"email": "Ann@Example.org", "name": "Ann", "topics": [topic], "confirmed": True,
              "consent_text": "Signed up at the spring conference"},
        headers=auth(token),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    ann = made.json()
    assert ann["email"] == "ann@example.org" and ann["status"] == "confirmed"
    again = client.post(
        "/api/v1/subscribers", json={"email": "ann@example.org"}, headers=auth(token)
    )
    assert again.status_code == 409
    changed = client.patch(
        f"/api/v1/subscribers/{ann['id']}", json={"name": "Ann B.", "topics": []},
        headers=auth(token),
    )  # fmt: skip
    assert changed.status_code == 200 and changed.json()["name"] == "Ann B."
    assert changed.json()["topics"] == []
    gone = client.post(f"/api/v1/subscribers/{ann['id']}/unsubscribe", headers=auth(token))
    assert gone.status_code == 200 and gone.json()["status"] == "unsubscribed"
    listed = client.get("/api/v1/subscribers?limit=1", headers=auth(token)).json()
    assert [s["id"] for s in listed["data"]] == [ann["id"]] and listed["next_after"] is None
    missing = client.get("/api/v1/subscribers/999999", headers=auth(token))
    assert missing.status_code == 404 and missing.json() == {"detail": "no subscriber #999999"}


def test_resources_through_the_api(db: Database, client: TestClient) -> None:
    token = new_token(db, ["resources:write"])
    body = {"title": "Equity in the classroom", "url": "https://example.org/equity",
            "summary": "How schools close gaps."}  # fmt: skip
    made = client.post("/api/v1/resources", json=body, headers=auth(token))
    assert made.status_code == 201, made.text
    twice = client.post("/api/v1/resources", json=body, headers=auth(token))
    assert twice.status_code == 422 and "already in the library" in twice.json()["detail"]
    bad = client.post("/api/v1/resources", json={**body, "url": "javascript:alert(1)"},
                      headers=auth(token))  # fmt: skip
    assert bad.status_code == 422
    edited = client.patch(
        f"/api/v1/resources/{made.json()['id']}", json={"title": "Equity, revised"},
        headers=auth(token),
    )  # fmt: skip
    assert edited.status_code == 200 and edited.json()["title"] == "Equity, revised"


# --- the token's life ---------------------------------------------------------------------------


def test_tokens_are_stored_hashed_with_a_recognisable_prefix(db: Database) -> None:
    token = new_token(db, ["subscribers:read"])
    assert re.fullmatch(r"nlt_[A-Za-z0-9_-]{40}", token)
    with db.session() as session:
        row = session.scalars(select(ApiToken)).one()
        stored = [str(v) for v in (row.token_hash, row.prefix, row.name, row.scopes)]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in value for value in stored) and token.startswith(row.prefix)


def test_revocation_is_immediate(db: Database, client: TestClient) -> None:
    token = new_token(db, ["subscribers:read"])
    assert client.get("/api/v1/subscribers", headers=auth(token)).status_code == 200
    with db.session() as session:
        row = session.scalars(select(ApiToken)).one()
        assert tokens.revoke(session, row.id, now=datetime.now(UTC))
    answer = client.get("/api/v1/subscribers", headers=auth(token))
    assert answer.status_code == 401 and answer.json() == {"detail": "this API token is revoked"}


def test_an_expired_token_is_refused(db: Database, client: TestClient, clock: Clock) -> None:
    token = new_token(db, ["subscribers:read"], expires_in=timedelta(days=1))
    assert client.get("/api/v1/subscribers", headers=auth(token)).status_code == 200
    clock.now += timedelta(days=1, seconds=1)
    answer = client.get("/api/v1/subscribers", headers=auth(token))
    assert answer.status_code == 401 and answer.json() == {"detail": "this API token is expired"}


def test_last_used_is_noted_at_most_once_a_minute(
    db: Database, client: TestClient, clock: Clock
) -> None:
    token = new_token(db, ["subscribers:read"])

    def last_used() -> datetime | None:
        with db.session() as session:
            return session.scalars(select(ApiToken.last_used_at)).one()

    assert last_used() is None
    client.get("/api/v1/subscribers", headers=auth(token))
    first = last_used()
    assert first is not None and abs(first - clock.now) < timedelta(seconds=1)
    clock.now += timedelta(seconds=30)
    client.get("/api/v1/subscribers", headers=auth(token))
    assert last_used() == first
    clock.now += timedelta(seconds=31)
    client.get("/api/v1/subscribers", headers=auth(token))
    assert last_used() == clock.now


def test_each_token_is_rate_limited_on_its_own(
    db: Database, settings: Settings, clock: Clock
) -> None:
    limited = settings.model_copy(update={"api_rate_limit_per_minute": 3})
    app = create_app(limited, db, messenger=MemoryMessenger(), clock=clock)
    busy, other = new_token(db, ["subscribers:read"]), new_token(db, ["subscribers:read"])
    with TestClient(app) as client:
        codes = [
            client.get("/api/v1/subscribers", headers=auth(busy)).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        assert client.get("/api/v1/subscribers", headers=auth(other)).status_code == 200


@pytest.mark.parametrize(
    ("scopes", "expires", "problem"),
    [
        ([], "90d", "at least one scope"),
        (["subscribers:delete"], "90d", "unknown scope 'subscribers:delete'"),
        (["subscribers:read"], "ninety days", "not like 90d"),
        (["subscribers:read"], "0d", "not like 90d"),
    ],
)
def test_bad_token_requests_are_refused(scopes: list[str], expires: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        tokens.check_scopes(scopes)
        tokens.parse_expiry(expires, now=datetime.now(UTC))


# --- the CLI ------------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_revokes_tokens(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    env: dict[str, Any] = {"NEWSLETTER_DATABASE_URL": settings.database_url,
                           "NEWSLETTER_VAR_DIR": str(settings.var_dir)}  # fmt: skip
    if settings.database_schema:
        env["NEWSLETTER_DATABASE_SCHEMA"] = settings.database_schema
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("tokens", "create", "--name", "crm", "--scope", "subscribers:read",
                       "--scope", "campaigns:read", "--expires", "30d")  # fmt: skip
    assert code == 0
    token = next(line for line in out.splitlines() if line.startswith("nlt_"))
    with db.session() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.scopes == ["campaigns:read", "subscribers:read"]
        assert row.expires_at is not None
        assert timedelta(days=29) < row.expires_at - datetime.now(UTC) <= timedelta(days=30)
    code, out, _ = run("tokens", "list")
    assert code == 0 and token not in out and "crm" in out
    code, _, err = run("tokens", "create", "--name", "x", "--scope", "everything")
    assert code == 1 and "unknown scope 'everything'" in err and "Traceback" not in err
    code, out, _ = run("tokens", "revoke", str(row.id))
    assert code == 0 and "revoked" in out
    with db.session() as session:
        assert session.scalars(select(ApiToken)).one().state(datetime.now(UTC)) == "revoked"
