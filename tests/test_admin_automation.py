"""The admin's webhook and API-token pages: secrets shown once, the log, replay, test, revoke."""

from __future__ import annotations

import re

from sqlalchemy import select

from newsletter.automation.webhooks.dispatcher import Dispatcher
from newsletter.config import Settings
from newsletter.db import Database
from newsletter.models import ApiToken, WebhookDelivery
from tests.admin_helpers import ADMIN, EDITOR, add_account, fast_hashing, make_client, sign_in
from tests.webhook_receivers import Receiver, serving

__all__ = ["fast_hashing"]


def admin(db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    add_account(db, ADMIN, "admin")
    return sign_in(make_client(db, settings), ADMIN)


def test_an_admin_registers_an_endpoint_sees_its_secret_once_and_replays(
    db: Database, settings: Settings
) -> None:
    settings = settings.model_copy(update={"webhook_allow_private_addresses": True})
    client = admin(db, settings)
    receiver = Receiver()
    with serving(receiver):
        made = client.form("/admin/settings/webhooks", {"url": receiver.url,
                                                       "event": ["subscriber.confirmed"]})  # fmt: skip
        assert made.status_code == 201, made.text
        secret = re.search(r"whsec_[A-Za-z0-9_-]+", made.text)
        assert secret and "this once" in made.text
        listing = client.get("/admin/settings/webhooks")
        assert receiver.url in listing.text and secret.group(0) not in listing.text
        endpoint_id = int(re.search(r"/admin/settings/webhooks/(\d+)", listing.text).group(1))  # type: ignore[union-attr]
        queued = client.form(f"/admin/settings/webhooks/{endpoint_id}/test")
        assert queued.status_code == 303
        Dispatcher(db, settings).run_once()
        detail = client.get(f"/admin/settings/webhooks/{endpoint_id}")
        assert "webhook.test" in detail.text and "HTTP 200" in detail.text
        assert secret.group(0) not in detail.text
        with db.session() as session:
            delivery_id = session.scalars(select(WebhookDelivery.id)).one()
        replayed = client.form(f"/admin/settings/webhooks/{endpoint_id}/replay/{delivery_id}")
        assert replayed.status_code == 303
        Dispatcher(db, settings).run_once()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].json["id"] == receiver.requests[1].json["id"]
    off = client.form(f"/admin/settings/webhooks/{endpoint_id}/state", {"enabled": "0"})
    assert off.status_code == 303
    assert "disabled by admin@example.org" in client.get(off.headers["location"]).text


def test_a_private_url_is_refused_on_the_form(db: Database, settings: Settings) -> None:
    client = admin(db, settings)
    answer = client.form("/admin/settings/webhooks", {"url": "https://127.0.0.1/hook"})
    assert answer.status_code == 422 and "private or loopback" in answer.text


def test_an_admin_creates_and_revokes_a_token(db: Database, settings: Settings) -> None:
    client = admin(db, settings)
    made = client.form("/admin/settings/tokens", {"name": "CRM sync", "expires": "30d",
                                                  "scope": ["subscribers:read"]})  # fmt: skip
    assert made.status_code == 201
    token = re.search(r"nlt_[A-Za-z0-9_-]{40}", made.text)
    assert token
    assert (
        client.get(
            "/api/v1/subscribers", headers={"Authorization": f"Bearer {token.group(0)}"}
        ).status_code
        == 200
    )
    page = client.get("/admin/settings/tokens")
    assert "CRM sync" in page.text and token.group(0) not in page.text
    with db.session() as session:
        token_id = session.scalars(select(ApiToken.id)).one()
    assert client.form(f"/admin/settings/tokens/{token_id}/revoke").status_code == 303
    assert (
        client.get(
            "/api/v1/subscribers", headers={"Authorization": f"Bearer {token.group(0)}"}
        ).status_code
        == 401
    )
    bad = client.form("/admin/settings/tokens", {"name": "x", "scope": []})
    assert bad.status_code == 422 and "at least one scope" in bad.text


def test_editors_cannot_reach_the_integration_pages(db: Database, settings: Settings) -> None:
    add_account(db, EDITOR, "editor")
    client = sign_in(make_client(db, settings), EDITOR)
    for path in ("/admin/settings/webhooks", "/admin/settings/tokens"):
        assert client.get(path).status_code == 403
