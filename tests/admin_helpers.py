"""Builders for the admin tests: an app with a memory messenger, accounts, signed-in clients."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from newsletter.admin import users
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.issues.source import load_source
from newsletter.issues.store import import_source
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.issue_helpers import ISSUE_42, import_library

PASSWORD = "correct horse battery staple"
EDITOR = "editor@example.org"
ADMIN = "admin@example.org"
PRODUCTION_HASHER = users.HASHER
# argon2id at its production cost takes ~0.3 s a hash; the tests hash a hundred times.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for tests that import this fixture (the format stays argon2id)."""
    monkeypatch.setattr(users, "HASHER", FAST_HASHER)


class AdminClient(TestClient):
    """A test client that remembers the page's CSRF token and sends it with every form."""

    csrf: str = ""

    def form(self, url: str, data: dict[str, object] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
        body = {"csrf_token": self.csrf, **(data or {})}
        return self.post(url, data=body, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def make_client(
    db: Database, settings: Settings, messenger: MemoryMessenger | None = None
) -> AdminClient:
    app = create_app(settings, db, messenger=messenger or MemoryMessenger())
    return AdminClient(app)


def add_account(db: Database, email: str, role: str, password: str = PASSWORD) -> None:
    with db.session() as session:
        users.add_user(email, password, role, session=session)


def login_token(client: TestClient) -> str:
    page = client.get("/admin/login")
    found = _CSRF_FIELD.search(page.text)
    assert found, page.text
    return found.group(1)


def sign_in(client: AdminClient, email: str, password: str = PASSWORD) -> AdminClient:
    """Log in through the form and keep the session's CSRF token for later forms."""
    token = login_token(client)
    answer = client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    dashboard = client.get("/admin")
    found = _CSRF_META.search(dashboard.text)
    assert found and found.group(1), dashboard.text
    client.csrf = found.group(1)
    return client


def signed_in_client(
    db: Database, settings: Settings, role: str, messenger: MemoryMessenger | None = None
) -> AdminClient:
    email = ADMIN if role == "admin" else EDITOR
    add_account(db, email, role)
    return sign_in(make_client(db, settings, messenger), email)


def load_issue_42(db: Database, settings: Settings, seeds: Path) -> None:
    with db.session() as session:
        import_library(seeds, session=session, settings=settings)
        import_source(load_source(ISSUE_42), session=session)


def finished_job(
    client: AdminClient, started: Any, *, timeout: float = 60.0
) -> tuple[dict[str, Any], str]:
    """Follow an upload's redirect to its job, wait for the job to end: (its JSON, its page)."""
    import time

    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith("/admin/jobs/")
    api = location.replace("/admin/jobs/", "/admin/api/jobs/")
    deadline = time.monotonic() + timeout
    state = client.get(api).json()
    while not state["finished"]:
        assert time.monotonic() < deadline, f"job still {state['state']} after {timeout} s"
        time.sleep(0.05)
        state = client.get(api).json()
    return state, client.get(location).text
