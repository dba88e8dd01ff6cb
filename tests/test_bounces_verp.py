"""VERP envelope senders: signed, short, case-proof; on SMTP MAIL FROM and the outbox Return-Path."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from newsletter.bounces.verp import Verp, VerpKind
from newsletter.config import Settings, load_settings
from newsletter.errors import ConfigError
from newsletter.testing import sample_batch, sample_recipient
from newsletter.testing.smtp_sink import SmtpSink
from newsletter.transports import build_messenger
from newsletter.transports.outbox import OutboxMessenger
from newsletter.transports.smtp import SMTPMessenger

VERP = Verp("a-secret", "bounces.example.org", extra=("fbl",))


def test_address_round_trips_and_survives_case_changes() -> None:
    for ledger_id in (1, 36, 999_999, 2**40, 2**63 - 1):
        address = VERP.address(str(ledger_id))
        local = address.partition("@")[0]
        assert len(local) <= 8 + 13 + 1 + 10 and set(local) <= set(
            string.ascii_lowercase + string.digits + "+-"
        )
        for variant in (address, address.upper(), f"<{address.title()}>"):
            match = VERP.match(variant)
            assert (match.kind, match.ledger_id) == (VerpKind.LEDGER, ledger_id)


def test_every_single_character_change_is_refused() -> None:
    address = VERP.address("123456")
    local, _, domain = address.partition("@")
    start = len("bounces+")
    for at in range(start, len(local)):
        for ch in "0a9z-":
            if local[at] == ch:
                continue
            forged = f"{local[:at]}{ch}{local[at + 1 :]}@{domain}"
            assert VERP.match(forged).ledger_id is None, forged


def test_another_secret_or_domain_does_not_verify() -> None:
    address = VERP.address("42")
    assert Verp("other", "bounces.example.org").match(address).kind is VerpKind.FORGED
    assert Verp("a-secret", "elsewhere.example").match(address).kind is VerpKind.FOREIGN


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("bounces@bounces.example.org", VerpKind.PLAIN),
        ("bounces+test@bounces.example.org", VerpKind.TEST),
        ("FBL@bounces.example.org", VerpKind.EXTRA),
        ("bounces+@bounces.example.org", VerpKind.FORGED),
        ("bounces+zz-@bounces.example.org", VerpKind.FORGED),
        ("bounces+\u00e9\u00e9-\u00e9@bounces.example.org", VerpKind.FORGED),
        ("bounces+" + "z" * 40 + "-abc@bounces.example.org", VerpKind.FORGED),
        ("alice@bounces.example.org", VerpKind.FOREIGN),
        ("bounces+1-x@example.org", VerpKind.FOREIGN),
        ("not an address", VerpKind.FOREIGN),
        ("", VerpKind.FOREIGN),
    ],
)
def test_match_never_raises(address: str, kind: VerpKind) -> None:
    assert VERP.match(address).kind is kind


def test_test_sends_and_other_mail_are_recognisable() -> None:
    assert VERP.address("test-1a2b3c4d") == "bounces+test@bounces.example.org"
    assert VERP.address("confirm-17") == "bounces@bounces.example.org"


def test_bounce_domain_defaults_to_the_from_domain(make_settings: Callable[..., Settings]) -> None:
    assert (
        make_settings(from_email="News@Mail.Example.org").bounce_domain_name == "mail.example.org"
    )
    settings = make_settings(bounce_domain="Bounce.Example.net", bounce_local_part="rp")
    assert Verp.from_settings(settings).address("7").startswith("rp+7-")
    assert Verp.from_settings(settings).address("7").endswith("@bounce.example.net")
    with pytest.raises(ConfigError, match="bounce_local_part"):
        load_settings(bounce_local_part="bounces+x")


def test_smtp_mail_from_is_each_recipient_s_verp_address() -> None:
    recipients = [replace(sample_recipient(i), ref=str(100 + i)) for i in range(5)]
    recipients.append(replace(sample_recipient(9), ref="test-abc"))
    with SmtpSink() as sink:
        messenger = SMTPMessenger(sink.host, sink.port, timeout=5, envelope_sender=VERP)
        try:
            messenger.send(sample_batch(0, recipients=recipients))
        finally:
            messenger.close()
        senders = {m.rcpt_tos[0]: m.mail_from for m in sink.messages}
    assert senders == {r.email: VERP.address(r.ref) for r in recipients}
    assert senders["user9@example.org"] == "bounces+test@bounces.example.org"
    assert {VERP.match(senders[f"user{i}@example.org"]).ledger_id for i in range(5)} == {
        100,
        101,
        102,
        103,
        104,
    }


def test_outbox_files_start_with_the_return_path(tmp_path: Path) -> None:
    batch = sample_batch(
        0, recipients=[replace(sample_recipient(i), ref=str(7 + i)) for i in range(3)]
    )
    OutboxMessenger(tmp_path, envelope_sender=VERP).send(batch)
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 3
    for file in files:
        first = file.read_bytes().split(b"\r\n", 1)[0].decode()
        address = first.removeprefix("Return-Path: <").removesuffix(">")
        assert VERP.match(address).kind is VerpKind.LEDGER


def test_build_messenger_signs_with_the_settings(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(from_email="news@example.org")
    outbox = build_messenger(settings)
    assert isinstance(outbox, OutboxMessenger) and outbox.envelope_sender is not None
    assert Verp.from_settings(settings).match(outbox.envelope_sender("5")).ledger_id == 5
