"""SendGridMessenger against FakeSendGrid: one request per batch, each answer an outcome."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import socket
import time
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import python_http_client
from sendgrid.helpers.mail import (
    ClickTracking,
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    MailSettings,
    OpenTracking,
    Personalization,
    ReplyTo,
    SandBoxMode,
    Subject,
    SubscriptionTracking,
    Substitution,
    To,
    TrackingSettings,
)

from newsletter.config import Settings
from newsletter.errors import ConfigError, ValidationError
from newsletter.message import substitutions
from newsletter.testing import SAMPLE_SENDER, sample_batch, sample_recipient
from newsletter.testing.fake_sendgrid import FakeSendGrid, Reply
from newsletter.transports import build_messenger
from newsletter.transports.base import BatchResult, MessageBatch, Outcome
from newsletter.transports.sendgrid import SendGridMessenger

KEY = "SG.unit-test-key.do-not-leak-0123456789"
NOW = 1_700_000_000.0


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; the fake lives on 127.0.0.1."""
    for name in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def messenger(server: FakeSendGrid) -> SendGridMessenger:
    return SendGridMessenger(KEY, host=server.url, timeout=5.0, clock=lambda: NOW)


def _all(result: BatchResult, outcome: Outcome) -> bool:
    return bool(result.results) and all(r.outcome is outcome for r in result.results)


def _details(result: BatchResult) -> list[str]:
    return [r.detail for r in result.results] + [result.error or ""]


# the request ---------------------------------------------------------------------


def test_batch_of_1000_is_one_request_with_1000_personalizations(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    batch = sample_batch(1000)
    result = messenger.send(batch)

    assert len(server.requests) == 1
    request = server.requests[0]
    assert len(request.personalizations) == 1000
    assert _all(result, Outcome.ACCEPTED)
    assert [r.ref for r in result.results] == [r.ref for r in batch.recipients]
    assert {r.provider_id for r in result.results} == {request.message_id}
    assert server.accepted_ledger_ids() == {r.ref: 1 for r in batch.recipients}
    for rcpt, item in zip(batch.recipients, request.personalizations, strict=True):
        assert item["to"] == [{"email": rcpt.email, "name": rcpt.values["name"]}]
        assert item["custom_args"] == {"campaign_id": "7", "ledger_id": rcpt.ref}
        assert item["headers"] == {
            "List-Unsubscribe": f"<{rcpt.values['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "KnowledgeWorks Newsletter <newsletter.example.org>",
        }
        subs = item["substitutions"]
        assert subs["%%name%%"] == rcpt.values["name"]
        assert subs["%%unsubscribe_url%%"] == rcpt.values["unsubscribe_url"]
        assert subs["%%unsubscribe_url:html%%"] == rcpt.values["unsubscribe_url"]


def test_message_keeps_placeholders_and_disables_subscription_tracking(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    batch = sample_batch(2)
    messenger.send(batch)

    body = server.requests[0].body or {}
    source = batch.template.source
    assert body["subject"] == source.subject == "Issue 42 for %%name%%"
    assert body["content"] == [
        {"type": "text/plain", "value": source.text},
        {"type": "text/html", "value": source.html},
    ]
    assert "%%unsubscribe_url:html%%" in body["content"][1]["value"]
    assert body["from"] == {"email": SAMPLE_SENDER.email, "name": SAMPLE_SENDER.name}
    assert body["reply_to"] == {"email": SAMPLE_SENDER.reply_to}
    # Clicks and opens are tracked first-party: SendGrid's own tracking is off explicitly.
    assert body["tracking_settings"] == {
        "subscription_tracking": {"enable": False},
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
    }
    assert body["mail_settings"] == {"sandbox_mode": {"enable": False}}


def test_html_substitutions_are_escaped_and_unused_ones_left_out(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    rcpt = sample_recipient(1, name="Ann <b>& Co</b>")
    messenger.send(sample_batch(0, recipients=[rcpt]))

    subs = server.requests[0].personalizations[0]["substitutions"]
    assert subs["%%name:html%%"] == "Ann &lt;b&gt;&amp; Co&lt;/b&gt;"
    assert subs["%%name%%"] == "Ann <b>& Co</b>"
    assert "%%email%%" not in subs  # the sample never uses it: no dead weight x 1000


def test_payload_matches_what_the_sendgrid_helpers_build(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    batch = sample_batch(3)
    messenger.send(batch)

    assert server.requests[0].body == _helper_payload(batch)


def _helper_payload(batch: MessageBatch) -> dict[str, Any]:
    """The same mail built with sendgrid.helpers.mail, the reference for the JSON shape."""
    source = batch.template.source
    content = source.subject + source.text + source.html
    mail = Mail()
    mail.from_email = From(batch.sender.email, batch.sender.name)
    mail.subject = Subject(source.subject)
    mail.add_content(Content("text/html", source.html))
    mail.add_content(Content("text/plain", source.text))  # the helper puts text/plain first
    mail.reply_to = ReplyTo(batch.sender.reply_to)
    for index, rcpt in enumerate(batch.recipients):
        values = {**rcpt.values, "email": rcpt.email}
        item = Personalization()
        item.add_to(To(rcpt.email, values["name"]))
        for key, value in substitutions(values).items():
            if key in content:
                item.add_substitution(Substitution(key, value))
        for name, value in batch.template.fill(values).headers.items():
            item.add_header(Header(name, value))
        for name, value in {**batch.custom_args, "ledger_id": rcpt.ref}.items():
            item.add_custom_arg(CustomArg(name, value))
        mail.add_personalization(item, index)  # the default index 0 would reverse them
    tracking = TrackingSettings()
    tracking.subscription_tracking = SubscriptionTracking(False)
    tracking.click_tracking = ClickTracking(False, False)
    tracking.open_tracking = OpenTracking(False)
    mail.tracking_settings = tracking
    settings = MailSettings()
    settings.sandbox_mode = SandBoxMode(False)
    mail.mail_settings = settings
    payload: dict[str, Any] = json.loads(json.dumps(mail.get()))
    return payload


def test_commas_and_semicolons_are_removed_from_display_names(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    rcpt = sample_recipient(1, name="Smith, Ann; PhD")
    result = messenger.send(sample_batch(0, recipients=[rcpt]))

    assert _all(result, Outcome.ACCEPTED)  # the fake, like SendGrid, 400s on , or ;
    assert server.requests[0].personalizations[0]["to"][0]["name"] == "Smith Ann PhD"


def test_duplicate_address_is_refused_alone(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    first, second = sample_recipient(1), sample_recipient(2)
    twin = dataclasses.replace(second, ref="L99", email=first.email.upper())
    result = messenger.send(sample_batch(0, recipients=[first, twin, second]))

    assert [r.outcome for r in result.results] == [
        Outcome.ACCEPTED,
        Outcome.PERMANENT,
        Outcome.ACCEPTED,
    ]
    assert "already in this batch (ledger L1)" in result.results[1].detail
    assert server.requests[0].ledger_ids == ["L1", "L2"]


def test_same_recipient_twice_is_sent_once(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    rcpt = sample_recipient(1)
    result = messenger.send(sample_batch(0, recipients=[rcpt, rcpt]))

    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED, Outcome.PERMANENT]
    assert server.accepted_ledger_ids() == {"L1": 1}


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\x00", "\u2028", "\x85"])
def test_crlf_in_one_recipient_refuses_only_that_recipient(
    server: FakeSendGrid, messenger: SendGridMessenger, bad: str
) -> None:
    bad_name = dataclasses.replace(
        sample_recipient(1), values={"name": f"Eve{bad}Bcc: x@evil.test"}
    )
    good = sample_recipient(2)
    bad_url = dataclasses.replace(
        sample_recipient(3), values={"unsubscribe_url": f"https://x.test/u{bad}Bcc: x@evil.test"}
    )
    result = messenger.send(sample_batch(0, recipients=[bad_name, good, bad_url]))

    assert [r.outcome for r in result.results] == [
        Outcome.PERMANENT,
        Outcome.ACCEPTED,
        Outcome.PERMANENT,
    ]
    assert all("line break" in r.detail for r in (result.results[0], result.results[2]))
    assert server.requests[0].ledger_ids == ["L2"]
    assert "evil.test" not in json.dumps(server.requests[0].body)


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\u2028"])
def test_crlf_nul_in_batch_wide_headers_raise_before_any_request(
    server: FakeSendGrid, messenger: SendGridMessenger, bad: str
) -> None:
    batch = sample_batch(2)
    sender = dataclasses.replace(SAMPLE_SENDER, name=f"News{bad}Bcc: x@evil.test")
    with pytest.raises(ValidationError):
        messenger.send(dataclasses.replace(batch, sender=sender))
    assert server.requests == []


def test_empty_batch_sends_nothing_and_oversized_batch_is_a_bug(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    assert messenger.send(sample_batch(0)).results == ()
    with pytest.raises(ValueError, match="exceeds max_batch"):
        messenger.send(sample_batch(1001))
    assert server.requests == []


# answers -------------------------------------------------------------------------


def test_202_accepts_everyone_with_the_x_message_id(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.push(Reply(202, headers={"X-Message-Id": "abc123XYZ"}))
    result = messenger.send(sample_batch(5))

    assert _all(result, Outcome.ACCEPTED)
    assert {r.provider_id for r in result.results} == {"abc123XYZ"}
    assert result.error is None and result.retry_after is None


def test_429_is_temporary_with_retry_after_from_the_reset_header(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.push(
        Reply.error(429, "too many requests", headers={"X-RateLimit-Reset": str(int(NOW) + 30)}),
        Reply.error(429, "too many requests", headers={"X-RateLimit-Reset": str(int(NOW) - 5)}),
    )
    first = messenger.send(sample_batch(4))
    second = messenger.send(sample_batch(4))

    assert _all(first, Outcome.TEMPORARY) and first.retry_after == 30.0
    assert second.retry_after == 0.0  # a reset in the past never means "wait negative"
    assert first.error is None
    assert server.accepted_ledger_ids() == {}


def test_429_against_the_real_clock(server: FakeSendGrid) -> None:
    server.push(Reply.rate_limited(reset_in=3))
    result = SendGridMessenger(KEY, host=server.url).send(sample_batch(2))

    assert result.retry_after is not None and 1.0 <= result.retry_after <= 3.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_temporary(server: FakeSendGrid, messenger: SendGridMessenger, status: int) -> None:
    server.push(Reply.error(status, "try again"))
    result = messenger.send(sample_batch(3))

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is None and result.retry_after is None
    assert result.results[0].detail == f"SendGrid {status}: try again"


def test_400_is_permanent_with_the_providers_messages(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.push(Reply.error(400, "The from address does not match a verified Sender Identity."))
    result = messenger.send(sample_batch(3))

    assert _all(result, Outcome.PERMANENT)
    assert "does not match a verified Sender Identity" in result.results[0].detail
    assert result.error is None


def test_400_from_sendgrid_validation_names_the_field(server: FakeSendGrid) -> None:
    server.push(Reply(400, body={"errors": [{"message": "Invalid", "field": "from.email"}]}))
    result = SendGridMessenger(KEY, host=server.url).send(sample_batch(1))

    assert result.results[0].detail == "SendGrid 400: Invalid (field from.email)"


def test_401_wrong_key_sets_error(server: FakeSendGrid) -> None:
    result = SendGridMessenger("SG.wrong-key", host=server.url).send(sample_batch(3))

    assert _all(result, Outcome.TEMPORARY)  # not lost: they go once the key is fixed
    assert result.error is not None and result.error.startswith("SendGrid refused the API key: ")
    assert "authorization grant is invalid" in result.error


def test_403_sets_error(server: FakeSendGrid, messenger: SendGridMessenger) -> None:
    server.push(Reply.error(403, "access forbidden"))
    result = messenger.send(sample_batch(3))

    assert _all(result, Outcome.TEMPORARY)
    assert result.error == "SendGrid refused the API key: SendGrid 403: access forbidden"


def test_404_wrong_host_is_temporary_and_tells_the_admin(server: FakeSendGrid) -> None:
    result = SendGridMessenger(KEY, host=server.url + "/oops").send(sample_batch(2))

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is not None and "sendgrid_host" in result.error


def test_413_splits_in_halves_until_accepted(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.max_personalizations = 300
    batch = sample_batch(1000)
    result = messenger.send(batch)

    assert _all(result, Outcome.ACCEPTED)
    sizes = [(len(r.personalizations), r.status) for r in server.requests]
    assert sizes == [
        (1000, 413), (500, 413), (250, 202), (250, 202), (500, 413), (250, 202), (250, 202)
    ]  # fmt: skip
    assert server.accepted_ledger_ids() == {r.ref: 1 for r in batch.recipients}
    ids = {r.message_id for r in server.requests if r.accepted}
    assert len(ids) == 4 and {r.provider_id for r in result.results} == ids
    assert [r.ref for r in result.results] == [r.ref for r in batch.recipients]


def test_413_for_a_single_message_is_permanent(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.max_personalizations = 0
    result = messenger.send(sample_batch(2))

    assert _all(result, Outcome.PERMANENT)
    assert [len(r.personalizations) for r in server.requests] == [2, 1, 1]


def test_split_stops_when_the_first_half_is_rate_limited(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.max_personalizations = 500
    server.push(Reply.error(429, "slow down", headers={"X-RateLimit-Reset": str(int(NOW) + 10)}))
    result = messenger.send(sample_batch(1000))

    assert [len(r.personalizations) for r in server.requests] == [1000, 500]  # second half waits
    assert _all(result, Outcome.TEMPORARY)
    assert result.retry_after == 10.0


def test_split_stops_when_the_key_is_refused(
    server: FakeSendGrid, messenger: SendGridMessenger
) -> None:
    server.max_personalizations = 2
    server.push(Reply.error(401, "revoked"))
    result = messenger.send(sample_batch(4))

    assert [len(r.personalizations) for r in server.requests] == [4, 2]
    assert _all(result, Outcome.TEMPORARY)
    assert result.error is not None and "revoked" in result.error


def test_sandbox_200_counts_as_accepted(server: FakeSendGrid) -> None:
    server.push(Reply(200))
    result = SendGridMessenger(KEY, host=server.url, sandbox=True).send(sample_batch(2))

    assert _all(result, Outcome.ACCEPTED)
    assert "sandbox" in result.results[0].detail
    assert (server.requests[0].body or {})["mail_settings"] == {"sandbox_mode": {"enable": True}}


# the wire --------------------------------------------------------------------------


def test_read_timeout_after_sending_is_unknown(server: FakeSendGrid) -> None:
    server.push(Reply.hanging(5.0))
    started = time.monotonic()
    result = SendGridMessenger(KEY, host=server.url, timeout=0.3).send(sample_batch(3))

    assert time.monotonic() - started < 3.0
    assert _all(result, Outcome.UNKNOWN)
    assert "may have been sent" in result.results[0].detail
    assert result.error is None and result.retry_after is None
    assert len(server.requests) == 1  # the fake did get the whole request


def test_connection_refused_is_temporary() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before we connect
    result = SendGridMessenger(KEY, host=f"http://127.0.0.1:{port}", timeout=2).send(
        sample_batch(3)
    )

    assert _all(result, Outcome.TEMPORARY)
    assert "could not reach SendGrid" in result.results[0].detail
    assert result.error is None


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [
        (urllib.error.URLError(TimeoutError("timed out")), Outcome.TEMPORARY),  # connect timeout
        (
            urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
            Outcome.TEMPORARY,
        ),
        (TimeoutError("timed out"), Outcome.UNKNOWN),  # read timeout: request was sent
        (http.client.RemoteDisconnected("closed without response"), Outcome.UNKNOWN),
        (ConnectionResetError(104, "reset by peer"), Outcome.UNKNOWN),
    ],
)
def test_network_failures_before_and_after_sending(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, outcome: Outcome
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(python_http_client.Client, "_make_request", fail)
    result = SendGridMessenger(KEY, host="https://api.sendgrid.invalid").send(sample_batch(2))

    assert _all(result, outcome)
    assert result.error is None


# secrets ---------------------------------------------------------------------------


def test_the_api_key_never_appears_in_details_errors_or_logs(
    server: FakeSendGrid, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"key Bearer {KEY} is not valid ({KEY})"
    server.push(
        Reply.error(400, echo), Reply.error(403, echo), Reply.error(500, echo), Reply.hanging(2)
    )
    good = SendGridMessenger(KEY, host=server.url, timeout=0.3)
    results = [good.send(sample_batch(2)) for _ in range(4)]
    results.append(SendGridMessenger(KEY, host="http://127.0.0.1:9").send(sample_batch(1)))

    texts = [t for r in results for t in _details(r)]
    assert any("[redacted]" in t for t in texts)
    assert not any(KEY in t for t in texts)
    assert KEY not in caplog.text
    assert "user0@example.org" not in caplog.text  # nor the payload's subscriber addresses
    assert "Authorization" in caplog.text  # python_http_client did log the headers, redacted
    assert KEY not in repr(good)


# configuration ---------------------------------------------------------------------


def test_build_messenger_returns_sendgrid(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        transport="sendgrid", sendgrid_api_key=KEY, sendgrid_host="http://x.test"
    )
    messenger = build_messenger(settings)

    assert isinstance(messenger, SendGridMessenger)
    assert messenger.name == "sendgrid" and messenger.max_batch == 1000
    assert messenger.host == "http://x.test"


def test_build_messenger_needs_a_key(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="sendgrid_api_key"):
        build_messenger(make_settings(transport="sendgrid"))


def test_host_must_be_a_url() -> None:
    with pytest.raises(ConfigError, match="sendgrid_host"):
        SendGridMessenger(KEY, host="api.sendgrid.com")
