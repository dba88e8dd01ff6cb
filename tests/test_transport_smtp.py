"""SMTPMessenger against a real aiosmtpd server (SmtpSink): outcomes, pooling, drops, auth, TLS."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.errors import ConfigError, ValidationError
from newsletter.testing import SAMPLE_SENDER, sample_batch, sample_email, sample_recipient
from newsletter.testing.smtp_sink import SmtpSink, self_signed_tls
from newsletter.transports import build_messenger
from newsletter.transports.base import BatchResult, Outcome
from newsletter.transports.smtp import Security, SMTPMessenger

Factory = Callable[..., SMTPMessenger]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def make_messenger() -> Iterator[Factory]:
    """Messengers closed after the test (before their sink stops)."""
    made: list[SMTPMessenger] = []

    def factory(server: SmtpSink, **kwargs: Any) -> SMTPMessenger:
        kwargs.setdefault("timeout", 5.0)
        messenger = SMTPMessenger(server.host, server.port, **kwargs)
        made.append(messenger)
        return messenger

    yield factory
    for messenger in made:
        messenger.close()


def _outcomes(result: BatchResult) -> dict[str, Outcome]:
    return {r.ref: r.outcome for r in result.results}


def _all(result: BatchResult, outcome: Outcome) -> bool:
    return bool(result.results) and all(r.outcome is outcome for r in result.results)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# the happy path --------------------------------------------------------------------


def test_batch_of_50_over_two_connections(sink: SmtpSink, make_messenger: Factory) -> None:
    batch = sample_batch(50, email=sample_email(long_line=5000))
    result = make_messenger(sink, connections=2).send(batch)

    assert _all(result, Outcome.ACCEPTED)
    assert [r.ref for r in result.results] == [r.ref for r in batch.recipients]
    assert len(sink.messages) == 50
    assert sink.connections_opened <= 2
    assert sink.connections_used() == {1, 2}  # both connections worked in parallel
    by_rcpt = {m.rcpt_tos[0]: m for m in sink.messages}
    for rcpt, outcome in zip(batch.recipients, result.results, strict=True):
        received = by_rcpt[rcpt.email]
        assert received.mail_from == SAMPLE_SENDER.email
        message = received.parsed()
        assert message["Message-ID"] == outcome.provider_id
        assert message["List-Unsubscribe"] == f"<{rcpt.values['unsubscribe_url']}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Subject"] == f"Issue 42 for {rcpt.values['name']}"
        assert message.get_content_type() == "multipart/alternative"
        types = [part.get_content_type() for part in message.iter_parts()]
        assert types == ["text/plain", "text/html"]


def test_wire_format_is_crlf_with_short_lines(sink: SmtpSink, make_messenger: Factory) -> None:
    batch = sample_batch(3, email=sample_email(long_line=20_000))
    make_messenger(sink).send(batch)

    for received in sink.messages:
        data = received.data
        assert data.endswith(b"\r\n")
        assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        message = received.parsed()
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        plain = text.get_content().replace("\r\n", "\n")
        assert "\n.a line that starts with a dot\n" in plain  # dot-stuffing round trip
        assert ("x" * 20_000) in html.get_content()  # quoted-printable, decoded back


def test_connections_are_reused_across_batches_and_quit_on_close(
    sink: SmtpSink, make_messenger: Factory
) -> None:
    messenger = make_messenger(sink, connections=2)
    for _ in range(3):
        assert _all(messenger.send(sample_batch(20)), Outcome.ACCEPTED)
    assert sink.connections_opened <= 2
    assert len(sink.messages) == 60

    messenger.close()
    assert sink.quits == sink.connections_opened
    assert _all(messenger.send(sample_batch(2)), Outcome.ACCEPTED)  # reopens after close


def test_single_connection(sink: SmtpSink, make_messenger: Factory) -> None:
    result = make_messenger(sink, connections=1).send(sample_batch(10))

    assert _all(result, Outcome.ACCEPTED)
    assert sink.connections_opened == 1


def test_empty_batch_connects_to_nothing_and_oversized_batch_is_a_bug(
    sink: SmtpSink, make_messenger: Factory
) -> None:
    messenger = make_messenger(sink)
    assert messenger.send(sample_batch(0)).results == ()
    with pytest.raises(ValueError, match="exceeds max_batch"):
        messenger.send(sample_batch(1001))
    assert sink.connections_opened == 0


# refusals per recipient ------------------------------------------------------------


def test_4xx_and_5xx_replies_per_recipient(sink: SmtpSink, make_messenger: Factory) -> None:
    sink.rcpt_replies["user1@example.org"] = "451 4.3.0 try later"
    sink.rcpt_replies["user2@example.org"] = "550 5.1.1 no such user"
    sink.data_replies["user3@example.org"] = "452 4.2.2 mailbox full"
    sink.data_replies["user4@example.org"] = "554 5.6.0 message content rejected"
    sink.rcpt_replies["user5@example.org"] = "421 4.7.0 too busy, closing"
    batch = sample_batch(12)
    result = make_messenger(sink).send(batch)

    expected = {r.ref: Outcome.ACCEPTED for r in batch.recipients}
    expected |= {"L1": Outcome.TEMPORARY, "L2": Outcome.PERMANENT, "L3": Outcome.TEMPORARY}
    expected |= {"L4": Outcome.PERMANENT, "L5": Outcome.TEMPORARY}
    assert _outcomes(result) == expected
    details = {r.ref: r.detail for r in result.results}
    assert details["L1"] == "451 4.3.0 try later"
    assert details["L2"] == "550 5.1.1 no such user"
    assert details["L3"] == "452 4.2.2 mailbox full"
    assert details["L4"] == "554 5.6.0 message content rejected"
    assert result.error is None
    delivered = Counter(m.rcpt_tos[0] for m in sink.messages)
    accepted = [r.email for r in batch.recipients if expected[r.ref] is Outcome.ACCEPTED]
    assert delivered == Counter(accepted)  # each accepted exactly once, no refused one


# dropped connections ---------------------------------------------------------------


def test_server_closing_connections_mid_batch_reconnects_and_finishes(
    sink: SmtpSink, make_messenger: Factory
) -> None:
    sink.max_messages_per_connection = 4
    batch = sample_batch(30)
    result = make_messenger(sink, connections=2).send(batch)

    assert _all(result, Outcome.ACCEPTED)
    assert Counter(m.rcpt_tos[0] for m in sink.messages) == Counter(
        r.email for r in batch.recipients
    )
    assert sink.connections_opened >= 30 // 4


def test_drop_before_data_is_retried_once_on_a_fresh_connection(
    sink: SmtpSink, make_messenger: Factory
) -> None:
    sink.drop_at_rcpt["user3@example.org"] = 1
    result = make_messenger(sink, connections=1).send(sample_batch(6))

    assert _all(result, Outcome.ACCEPTED)
    assert len(sink.to("user3@example.org")) == 1
    assert sink.connections_opened == 2


def test_drop_twice_is_temporary(sink: SmtpSink, make_messenger: Factory) -> None:
    sink.drop_at_rcpt["user1@example.org"] = 2
    result = make_messenger(sink, connections=1).send(sample_batch(3))

    assert _outcomes(result) == {
        "L0": Outcome.ACCEPTED,
        "L1": Outcome.TEMPORARY,
        "L2": Outcome.ACCEPTED,
    }
    assert result.results[1].detail.startswith("connection lost twice")
    assert sink.to("user1@example.org") == []


def test_drop_after_data_is_unknown_and_not_retried(
    sink: SmtpSink, make_messenger: Factory
) -> None:
    sink.drop_after_data["user2@example.org"] = 1
    result = make_messenger(sink, connections=1).send(sample_batch(5))

    outcomes = _outcomes(result)
    assert outcomes.pop("L2") is Outcome.UNKNOWN
    assert set(outcomes.values()) == {Outcome.ACCEPTED}
    unknown = result.results[2]
    assert unknown.provider_id is not None and "may" in unknown.detail
    assert len(sink.to("user2@example.org")) == 1  # it did arrive: a retry would duplicate it


def test_server_down_is_temporary_without_error(make_messenger: Factory) -> None:
    down = SMTPMessenger("127.0.0.1", _closed_port(), timeout=2)
    result = down.send(sample_batch(5))

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is None
    assert "cannot connect" in result.results[0].detail


def test_server_that_never_greets_times_out_as_temporary() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        result = SMTPMessenger("127.0.0.1", port, timeout=0.3, connections=2).send(sample_batch(4))

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is None


# authentication --------------------------------------------------------------------


def test_auth_login_succeeds() -> None:
    with SmtpSink(auth=("mailer", "s3cret")) as sink:
        messenger = SMTPMessenger(sink.host, sink.port, username="mailer", password="s3cret")
        result = messenger.send(sample_batch(4))
        messenger.close()

    assert _all(result, Outcome.ACCEPTED)
    assert {m.login for m in sink.messages} == {"mailer"}


def test_auth_refused_sets_error_and_sends_nothing() -> None:
    with SmtpSink(auth=("mailer", "s3cret")) as sink:
        messenger = SMTPMessenger(sink.host, sink.port, username="mailer", password="wrong-pw")
        result = messenger.send(sample_batch(6))
        messenger.close()

    assert _all(result, Outcome.TEMPORARY)  # nothing is lost: resume after fixing the password
    assert result.error is not None and "refused the login for 'mailer'" in result.error
    assert "535" in result.error
    assert "wrong-pw" not in result.error + "".join(r.detail for r in result.results)
    assert sink.messages == []
    assert sink.auth_failures >= 1


def test_missing_login_is_an_admin_error() -> None:
    with SmtpSink(auth=("mailer", "s3cret")) as sink:
        messenger = SMTPMessenger(sink.host, sink.port)
        result = messenger.send(sample_batch(3))
        messenger.close()

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is not None and "530" in result.error


def test_username_without_password_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SMTPMessenger("127.0.0.1", 25, username="mailer")


# TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[Any, Any]:
    return self_signed_tls()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls(tls: tuple[Any, Any], security: Security) -> None:
    server_ctx, client_ctx = tls
    with SmtpSink(tls=server_ctx, implicit_tls=security == "ssl") as sink:
        messenger = SMTPMessenger(sink.host, sink.port, security=security, ssl_context=client_ctx)
        result = messenger.send(sample_batch(4))
        messenger.close()

    assert _all(result, Outcome.ACCEPTED)
    assert len(sink.messages) == 4


def test_untrusted_certificate_is_an_admin_error(tls: tuple[Any, Any]) -> None:
    server_ctx, _ = tls
    with SmtpSink(tls=server_ctx, implicit_tls=True) as sink:
        messenger = SMTPMessenger(sink.host, sink.port, security="ssl", timeout=5)
        result = messenger.send(sample_batch(2))
        messenger.close()

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is not None and "certificate" in result.error


def test_starttls_not_offered_is_an_admin_error(sink: SmtpSink, make_messenger: Factory) -> None:
    result = make_messenger(sink, security="starttls").send(sample_batch(2))

    assert _all(result, Outcome.TEMPORARY)
    assert result.error is not None and "STARTTLS" in result.error
    assert sink.messages == []


# header injection ------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\r", "\x00", "\u2028", "\x85", "\x0b"])
def test_crlf_nul_in_recipient_values_refuses_only_that_recipient(
    sink: SmtpSink, make_messenger: Factory, bad: str
) -> None:
    evil = f"Eve{bad}Bcc: victim@evil.test"
    by_name = dataclasses.replace(sample_recipient(1), values={"name": evil})
    by_url = dataclasses.replace(
        sample_recipient(2),
        values={"unsubscribe_url": f"https://x.test/u{bad}Bcc: victim@evil.test"},
    )
    batch = sample_batch(0, recipients=[sample_recipient(0), by_name, by_url, sample_recipient(3)])
    result = make_messenger(sink).send(batch)

    accepted, refused = Outcome.ACCEPTED, Outcome.PERMANENT
    assert _outcomes(result) == {"L0": accepted, "L1": refused, "L2": refused, "L3": accepted}
    assert "not sent" in result.results[1].detail
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == [
        "user0@example.org",
        "user3@example.org",
    ]
    for received in sink.messages:
        assert b"victim" not in received.data
        assert b"\r\nBcc:" not in received.data


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\x00", "\u2029"])
@pytest.mark.parametrize("where", ["sender name", "reply-to", "subject", "header"])
def test_crlf_nul_in_batch_wide_values_raise_and_nothing_is_sent(
    sink: SmtpSink, make_messenger: Factory, bad: str, where: str
) -> None:
    batch = sample_batch(3)
    evil = f"x{bad}Bcc: victim@evil.test"
    if where == "sender name":
        batch = dataclasses.replace(batch, sender=dataclasses.replace(SAMPLE_SENDER, name=evil))
    elif where == "reply-to":
        batch = dataclasses.replace(batch, sender=dataclasses.replace(SAMPLE_SENDER, reply_to=evil))
    else:  # a Template built without compile(), so its own check never ran
        source = batch.template.source
        bad_source = (
            dataclasses.replace(source, subject=evil)
            if where == "subject"
            else dataclasses.replace(source, headers={**source.headers, "X-Test": evil})
        )
        batch = dataclasses.replace(
            batch, template=dataclasses.replace(batch.template, source=bad_source)
        )

    with pytest.raises(ValidationError):
        make_messenger(sink).send(batch)
    assert sink.connections_opened == 0 and sink.messages == []


def test_non_ascii_address_is_refused_not_mangled(sink: SmtpSink, make_messenger: Factory) -> None:
    rcpt = dataclasses.replace(sample_recipient(1), email="jos\u00e9@example.org")
    result = make_messenger(sink).send(sample_batch(0, recipients=[rcpt, sample_recipient(2)]))

    assert _outcomes(result) == {"L1": Outcome.PERMANENT, "L2": Outcome.ACCEPTED}
    assert "SMTPUTF8" in result.results[0].detail
    sender = dataclasses.replace(SAMPLE_SENDER, email="n\u00e9ws@example.org")
    with pytest.raises(ValidationError, match="ASCII"):
        make_messenger(sink).send(dataclasses.replace(sample_batch(1), sender=sender))


# programming errors ----------------------------------------------------------------


def test_programming_errors_raise(sink: SmtpSink, make_messenger: Factory) -> None:
    batch = sample_batch(2)
    broken = dataclasses.replace(batch.template, html=None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        make_messenger(sink).send(dataclasses.replace(batch, template=broken))


def test_concurrent_sends_share_the_pool(sink: SmtpSink, make_messenger: Factory) -> None:
    messenger = make_messenger(sink, connections=2)
    results: list[BatchResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(messenger.send(sample_batch(10))))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 3 and all(_all(r, Outcome.ACCEPTED) for r in results)
    assert sink.connections_opened <= 2


# configuration ---------------------------------------------------------------------


def test_build_messenger_returns_smtp(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        transport="smtp", smtp_host="mail.example.org", smtp_port=587, smtp_security="starttls",
        smtp_username="u", smtp_password="pw-s3cret", smtp_connections=3, smtp_timeout_seconds=7,
    )  # fmt: skip
    messenger = build_messenger(settings)

    assert isinstance(messenger, SMTPMessenger)
    assert (messenger.host, messenger.port, messenger.security) == (
        "mail.example.org",
        587,
        "starttls",
    )
    assert (messenger.connections, messenger.timeout, messenger.username) == (3, 7.0, "u")
    assert messenger.name == "smtp" and messenger.max_batch == 1000
    assert "pw-s3cret" not in repr(messenger)
