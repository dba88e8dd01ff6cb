"""The admin's security rules: logins, sessions, roles, CSRF, headers, and inert editor HTML.

Every test runs on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter import admin
from newsletter.admin import auth, users
from newsletter.admin.access import AdminState
from newsletter.admin.routes.home import safe_next
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import StateError, ValidationError
from newsletter.models import Issue, UserSession
from newsletter.transports import MemoryMessenger
from newsletter.web import create_app
from tests.admin_helpers import (
    ADMIN,
    EDITOR,
    PASSWORD,
    PRODUCTION_HASHER,
    AdminClient,
    add_account,
    fast_hashing,  # noqa: F401 - autouse fixture
    load_issue_42,
    login_token,
    make_client,
    sign_in,
    signed_in_client,
)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 4, 3, 13, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


def _admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) the admin serves, ids filled in."""
    routes = []
    for router in admin.routers():
        for route in router.routes:
            assert isinstance(route, APIRoute) and route.path.startswith("/admin")
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            routes += [(method, path) for method in sorted(route.methods)]
    return routes


# --- no login, no admin ------------------------------------------------------------------


def test_no_admin_url_answers_without_a_login(db: Database, settings: Settings) -> None:
    client = make_client(db, settings)
    routes = [r for r in _admin_routes() if not r[1].startswith("/admin/login")]
    assert len(routes) > 30
    for method, path in routes:
        answer = client.request(method, path, follow_redirects=False)
        if path.startswith("/admin/api/"):
            assert answer.status_code == 401, (method, path)
            assert answer.json() == {"detail": "sign in first"}
        else:
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/admin/login?next=/admin")
    # the editor's script gets JSON, never a login page to paste into the editor
    fragment = client.post("/admin/issues/1/sections", headers={"X-Admin-Fragment": "1"})
    assert fragment.status_code == 401 and fragment.json() == {"detail": "sign in first"}
    # a forged or tampered cookie is no login either
    client.cookies.set("nl_admin", "forged.value", path="/admin")
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_an_editor_gets_403_on_admin_pages(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    home = client.get("/admin").text
    assert 'href="/admin/library"' in home and 'href="/admin/campaigns"' not in home
    for path in ("/admin/campaigns", "/admin/campaigns/1", "/admin/subscribers",
                 "/admin/subscribers/1", "/admin/settings", "/admin/subscribers/export.csv"):  # fmt: skip
        assert client.get(path).status_code == 403, path
    assert client.get("/admin/api/campaigns/1/progress").status_code == 403
    refused = client.form("/admin/campaigns", {"issue": "42", "when": "now"})
    assert refused.status_code == 403 and "for admins" in refused.text
    assert client.form("/admin/users", {"email": "x@example.org"}).status_code == 403
    assert client.get("/admin/library").status_code == 200


# --- CSRF --------------------------------------------------------------------------------


def _issue_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(Issue.id))) or 0)


def test_a_form_without_its_csrf_token_is_refused(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    data = {"number": "7", "title": "Issue 7", "date": "2026-04-01", "subject": "Hello"}
    missing = client.post("/admin/issues", data=data, follow_redirects=False)
    wrong = client.post("/admin/issues", data={**data, "csrf_token": "x" * 43})
    assert missing.status_code == wrong.status_code == 403
    assert "did not come from this site" in missing.text
    assert _issue_count(db) == 0
    # another session's token does not work in this one
    other = sign_in(make_client(db, settings), EDITOR)
    assert other.csrf != client.csrf
    stolen = client.post("/admin/issues", data={**data, "csrf_token": other.csrf})
    assert stolen.status_code == 403 and _issue_count(db) == 0
    scripted = client.post("/admin/issues", data=data, headers={"X-Admin-Fragment": "1"})
    assert (
        scripted.status_code == 403 and "did not come from this site" in scripted.json()["detail"]
    )
    # the header (scripts) or the field (forms) carrying the right token both pass
    by_header = client.post("/admin/issues", data=data, headers={"X-CSRF-Token": client.csrf},
                            follow_redirects=False)  # fmt: skip
    assert by_header.status_code == 303 and _issue_count(db) == 1
    assert client.form("/admin/logout").status_code == 303


def test_logout_and_uploads_need_the_token_too(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    assert client.post("/admin/logout", follow_redirects=False).status_code == 403
    upload = client.post("/admin/library/import",
                         files={"files": ("a.csv", b"title\nA\n", "text/csv")})  # fmt: skip
    assert upload.status_code == 403
    assert client.get("/admin").status_code == 200  # still signed in


def test_the_login_form_has_its_own_csrf_check(db: Database, settings: Settings) -> None:
    add_account(db, EDITOR, "editor")
    client = make_client(db, settings)
    data = {"email": EDITOR, "password": PASSWORD}
    assert client.post("/admin/login", data=data).status_code == 403  # no nonce, no token
    token = login_token(client)
    client.cookies.delete("nl_admin_login", path="/admin")
    client.cookies.set("nl_admin_login", "another-nonce", path="/admin")
    assert client.post("/admin/login", data={**data, "csrf_token": token}).status_code == 403
    assert "nl_admin" not in {c.name for c in client.cookies.jar}


# --- sessions ----------------------------------------------------------------------------


def test_session_cookie_is_httponly_samesite_and_secure_outside_debug(
    db: Database, settings: Settings
) -> None:
    add_account(db, EDITOR, "editor")
    production = settings.model_copy(update={"debug": False})
    app = create_app(production, db, messenger=MemoryMessenger())
    client = AdminClient(app, base_url="https://testserver")  # Secure cookies need https
    token = login_token(client)
    answer = client.post("/admin/login", follow_redirects=False,
                         data={"email": EDITOR, "password": PASSWORD, "csrf_token": token})  # fmt: skip
    cookie = next(v for v in answer.headers.get_list("set-cookie") if v.startswith("nl_admin="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=lax", "path=/admin"} <= flags
    value = cookie.split(";")[0].split("=", 1)[1]
    raw = auth.token_from_cookie(production, value)
    assert raw is not None and auth.token_from_cookie(production, value[:-2] + "xx") is None
    with db.session() as session:  # the database holds only the token's hash
        stored = session.scalars(select(UserSession.token_hash)).all()
    assert stored == [auth.token_hash(raw)] and raw not in stored
    debug_cookie = make_client(db, settings)
    sign_in(debug_cookie, EDITOR)
    assert "secure" not in str(debug_cookie.cookies.jar).lower()


def test_logout_and_removal_end_sessions_everywhere(db: Database, settings: Settings) -> None:
    first = signed_in_client(db, settings, "editor")
    copy = make_client(db, settings)
    copy.cookies.set("nl_admin", first.cookies.get("nl_admin") or "", path="/admin")
    assert copy.get("/admin").status_code == 200
    out = first.form("/admin/logout")
    assert out.status_code == 303 and out.headers["location"] == "/admin/login?done=signed-out"
    assert copy.get("/admin", follow_redirects=False).status_code == 303
    again = sign_in(make_client(db, settings), EDITOR)
    with db.session() as session:
        users.remove_user(EDITOR, session=session)
    assert again.get("/admin", follow_redirects=False).status_code == 303


def test_sessions_expire_when_idle_and_after_a_day_at_most(
    db: Database, settings: Settings
) -> None:
    add_account(db, EDITOR, "editor")
    clock = Clock()
    client = AdminClient(create_app(settings, db, messenger=MemoryMessenger(), clock=clock))
    sign_in(client, EDITOR)
    for _ in range(7):  # active every 100 minutes: never idle, but the absolute limit holds
        clock.now += timedelta(minutes=100)
        assert client.get("/admin", follow_redirects=False).status_code == 200
    clock.now += timedelta(minutes=100)  # 13h20m after signing in
    assert client.get("/admin", follow_redirects=False).status_code == 303
    sign_in(client, EDITOR)
    clock.now += auth.IDLE + timedelta(seconds=1)
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_only_admin_paths_are_accepted_after_login() -> None:
    assert safe_next("/admin/issues/42") == "/admin/issues/42"
    for bad in ("https://evil.example/", "//evil.example", "/admin//evil.example", "",
                "/admin/login", "/admin\\x", "/admin\n"):  # fmt: skip
        assert safe_next(bad) == "/admin", bad


# --- logins ------------------------------------------------------------------------------


def _attempt(client: TestClient, email: str, password: str) -> int:
    data = {"email": email, "password": password, "csrf_token": login_token(client)}
    return client.post("/admin/login", data=data, follow_redirects=False).status_code


def test_wrong_password_and_unknown_account_get_the_same_answer(
    db: Database, settings: Settings
) -> None:
    add_account(db, EDITOR, "editor")
    client = make_client(db, settings)
    token = login_token(client)
    wrong = client.post("/admin/login", data={"email": EDITOR, "password": "nope" * 4,
                                              "csrf_token": token})  # fmt: skip
    unknown = client.post("/admin/login", data={"email": "who@example.org", "password": "x",
                                                "csrf_token": login_token(client)})  # fmt: skip
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text


def test_failed_logins_are_limited_per_account_and_per_ip(db: Database, settings: Settings) -> None:
    add_account(db, EDITOR, "editor")
    add_account(db, ADMIN, "admin")
    client = make_client(db, settings)
    client.get("/admin/login")
    state = admin_state_of(client)
    state.limits = auth.LoginLimits(
        per_ip=auth.FailureLimiter(6, 900), per_account=auth.FailureLimiter(3, 900)
    )
    assert [_attempt(client, EDITOR, "wrong password!") for _ in range(3)] == [401] * 3
    blocked = client.post("/admin/login", data={"email": EDITOR, "password": PASSWORD,
                                                "csrf_token": login_token(client)})  # fmt: skip
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert _attempt(client, ADMIN, PASSWORD) == 303  # another account is not blocked
    client.cookies.clear()
    assert [_attempt(client, f"x{i}@example.org", "guess") for i in range(3)] == [401] * 3
    assert _attempt(client, ADMIN, PASSWORD) == 429  # the IP has used up its failures


def admin_state_of(client: TestClient) -> AdminState:
    state = client.app.state.admin  # type: ignore[attr-defined]
    assert isinstance(state, AdminState)
    return state


def test_failure_limiter_window_and_clear() -> None:
    now = [0.0]
    limiter = auth.FailureLimiter(2, 60, clock=lambda: now[0])
    limiter.fail("k")
    assert limiter.retry_after("k") is None
    limiter.fail("k")
    assert limiter.retry_after("k") == 61
    now[0] = 30
    assert limiter.retry_after("k") == 31
    now[0] = 61
    assert limiter.retry_after("k") is None
    limiter.fail("k"), limiter.fail("k")
    limiter.clear("k")
    assert limiter.retry_after("k") is None


def test_accounts_hash_passwords_and_keep_an_admin(db: Database) -> None:
    with db.session() as session:
        user = users.add_user("Ann@Example.org", PASSWORD, "admin", session=session)
        assert user.email == "ann@example.org" and user.password_hash.startswith("$argon2id$")
        # production cost is at least OWASP's argon2id minimum (19 MiB, 2 passes)
        assert PRODUCTION_HASHER.memory_cost >= 19 * 1024 and PRODUCTION_HASHER.time_cost >= 2
        assert PASSWORD not in user.password_hash
        with pytest.raises(ValidationError, match="already has an account"):
            users.add_user("ann@example.org", PASSWORD, "editor", session=session)
        with pytest.raises(ValidationError, match="at least 12"):
            users.add_user("bob@example.org", "short", "editor", session=session)
        with pytest.raises(ValidationError, match="role must be"):
            users.add_user("bob@example.org", PASSWORD, "owner", session=session)
        assert users.authenticate("ANN@example.org", PASSWORD, session=session) is not None
        assert users.authenticate("ann@example.org", PASSWORD + "x", session=session) is None
        assert users.authenticate("not an address", PASSWORD, session=session) is None
        with pytest.raises(StateError, match="last admin"):
            users.remove_user("ann@example.org", session=session, keep_an_admin=True)


# --- headers and inert HTML -----------------------------------------------------------


def test_admin_pages_allow_own_scripts_and_no_framing(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "editor")
    answer = client.get("/admin/library")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert '<script src="/static/admin.js" defer></script>' in answer.text
    assert "<script>" not in answer.text and " style=" not in answer.text
    public = client.get("/preferences/x").headers["content-security-policy"]
    assert "script-src" not in public  # the public pages still allow no script at all,
    signup = client.get("/subscribe").headers["content-security-policy"]  # but the sign-up
    assert signup.startswith("script-src 'self'; ") and "unsafe-inline" not in signup  # page's


XSS = '<script>alert("x")</script><img src="https://example.org/a.png" onerror="alert(1)">'


def test_editor_html_is_inert_in_the_preview_and_the_pages(
    db: Database, settings: Settings, seeds_dir: Path
) -> None:
    load_issue_42(db, settings, seeds_dir)
    client = signed_in_client(db, settings, "editor")
    saved = client.form("/admin/issues/42/details", {
        "title": 'Issue 42 <script>alert("t")</script>', "subject": "Subject <b onmouseover=x>",
        "date": "2018-04-01", "preheader": "", "intro": f"Hello {XSS}",
    })  # fmt: skip
    assert saved.status_code == 303, saved.text
    item = re.search(r'id="item-(\d+)"', client.get("/admin/issues/42").text)
    assert item
    client.form(f"/admin/issues/42/items/{item.group(1)}", {"blurb": f"Blurb {XSS}"})
    client.form("/admin/library/1", {"title": "<img src=x onerror=alert(2)>", "summary": XSS})
    preview = client.get("/admin/issues/42/preview")
    assert "Hello" in preview.text and "Blurb" in preview.text
    assert "<script" not in preview.text.lower() and "onerror" not in preview.text.lower()
    for variant in ("/admin/issues/42/preview", "/admin/issues/42/preview?scheme=dark",
                    "/admin/issues/42/preview.txt"):  # fmt: skip
        csp = client.get(variant).headers["content-security-policy"]
        assert "sandbox allow-same-origin" in csp and "allow-scripts" not in csp, variant
        assert "script-src" not in csp and "frame-ancestors 'self'" in csp, variant
    for path in ("/admin/issues/42", "/admin/issues", "/admin/library", "/admin/library/1"):
        page = client.get(path).text
        assert '<script>alert("t")</script>' not in page and "<img src=x onerror" not in page
        assert "<script>alert" not in page and 'onerror="alert(1)"' not in page, path
    editor_page = client.get("/admin/issues/42").text
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in editor_page
    frames = re.findall(r"<iframe[^>]*>", editor_page)
    assert len(frames) == 4 and all('sandbox="allow-same-origin"' in f for f in frames)
    assert "/admin/issues/42/preview" in editor_page


def test_admins_manage_accounts_but_never_their_own(db: Database, settings: Settings) -> None:
    client = signed_in_client(db, settings, "admin")
    page = client.get("/admin/settings").text
    assert "test-secret-key" not in page and "Transport" in page and ADMIN in page
    short = client.form("/admin/users", {"email": "new@example.org", "role": "editor",
                                         "password": "short"})  # fmt: skip
    assert short.status_code == 422 and "at least 12" in short.text
    added = client.form("/admin/users", {"email": "new@example.org", "role": "editor",
                                         "password": PASSWORD})  # fmt: skip
    assert added.headers["location"].endswith("done=user-added#users")
    newcomer = sign_in(make_client(db, settings), "new@example.org")
    with db.session() as session:
        ids = {u.email: u.id for u in users.list_users(session=session)}
    myself = client.form(f"/admin/users/{ids[ADMIN]}/delete")
    assert myself.status_code == 409 and "your own account" in myself.text
    assert client.form(f"/admin/users/{ids['new@example.org']}/delete").status_code == 303
    assert newcomer.get("/admin", follow_redirects=False).status_code == 303  # signed out
