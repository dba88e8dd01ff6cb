"""Fuzz the public JSON API from its own OpenAPI document (schemathesis): never a 5xx.

The app is the real ``create_app`` on SQLite and PostgreSQL with a webhook key
configured (so the webhook answers 403, not its deliberate 503) and the
per-IP limit lifted (so the handlers, not the limiter, get the traffic).  Half
of the generated cases that carry a token get a *valid* one instead, so the
success paths are fuzzed too, not only "this link is not valid".
"""

from __future__ import annotations

import os
import zlib
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.subscribers import service
from newsletter.subscribers.store import CLI
from newsletter.subscribers.tokens import Purpose, tokens_for
from newsletter.testing.webhook_signer import Signer
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from newsletter.web.limits import RateLimits


@pytest.fixture
def api_app(settings: Settings, db: Database) -> FastAPI:
    configured = settings.model_copy(
        update={"sendgrid_webhook_public_key": Signer.new().public_b64}
    )
    with db.session() as session:
        topics = [t.name for t in configured.topics]
        row = service.add(
            "fuzz@example.org",
            session=session,
            actor=CLI,
            allowed_topics=topics,
            name="Fuzz",
            topics=topics[:2],
            confirmed=True,
        )
        tokens = tokens_for(configured)
        valid = {purpose: tokens.make(purpose, row) for purpose in Purpose}
    app = create_app(
        configured,
        db,
        messenger=MemoryMessenger(),
        limits=RateLimits(per_ip=1_000_000, window_seconds=1),
    )
    app.state.valid_tokens = valid
    return app


@pytest.fixture
def api_schema(api_app: FastAPI) -> Any:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    # Valid and invalid inputs alike, NUL bytes included (PostgreSQL refuses them in text).
    loaded.config.generation.update(
        modes=list(schemathesis.GenerationMode), allow_x00=True, database="none"
    )
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")
EXAMPLES = int(os.environ.get("RELIABILITY_API_EXAMPLES", "80"))  # per operation; more locally


def _with_valid_token(case: Any, app: FastAPI) -> None:
    """Swap in a real token for about half the cases that carry one."""
    if zlib.crc32(repr((case.path_parameters, case.body)).encode()) % 2:
        return
    valid: dict[Purpose, str] = app.state.valid_tokens
    path = case.operation.path
    purpose = (
        Purpose.CONFIRM
        if "confirm" in path
        else Purpose.UNSUBSCRIBE
        if "unsubscribe" in path
        else Purpose.PREFERENCES
    )
    if case.path_parameters and "token" in case.path_parameters:
        case.path_parameters = {**case.path_parameters, "token": valid[purpose]}
    if isinstance(case.body, dict) and "token" in case.body:
        case.body = {**case.body, "token": valid[purpose]}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_json_api_never_answers_5xx(case: Any, api_app: FastAPI) -> None:
    _with_valid_token(case, api_app)
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])


# --------------------------------------------------------------------------- the HTML pages

_TEXT = st.text(st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    [
        "",
        "\x00",
        "ann@example.org",
        "ann@example.org\r\nBcc: x@y.z",
        "%00",
        "../../etc/passwd",
        "a" * 5000,
        "One-Click",
        "keep",
        "30",
        "-1",
        "99999999999999999999",
        "<script>",
    ]
)


@settings(max_examples=EXAMPLES * 3, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/subscribe", "/confirm/{t}", "/u/{t}", "/preferences/{t}"]),
    method=st.sampled_from(["GET", "POST"]),
    valid=st.booleans(),
    junk=_TEXT,
    form=st.dictionaries(
        st.sampled_from(["email", "name", "topics", "website", "pause", "List-Unsubscribe"]),
        _TEXT | st.lists(_TEXT, max_size=3),
        max_size=6,
    ),
)
def test_the_html_pages_never_answer_5xx(
    api_app: FastAPI, path: str, method: str, valid: bool, junk: str, form: dict[str, Any]
) -> None:
    tokens: dict[Purpose, str] = api_app.state.valid_tokens
    purpose = {"/confirm": Purpose.CONFIRM, "/u/": Purpose.UNSUBSCRIBE}
    chosen = next((p for k, p in purpose.items() if path.startswith(k)), Purpose.PREFERENCES)
    token = tokens[chosen] if valid else quote(junk, safe="") or "x"
    with TestClient(api_app, raise_server_exceptions=False) as client:
        response = client.request(method, path.replace("{t}", token), data=form or None)
    assert response.status_code < 500, (method, path, form, response.text[:500])
