"""DKIM signing: keys and records, the signer, and real mail verified by dkimpy over real DNS.

Every verification goes through ``dkim.verify`` (dkimpy, the reference) with
its DNS lookups answered by a dnslib server on a local socket (``LocalDns``),
through the same resolver the DNS check uses; the SMTP tests send through a
real aiosmtpd relay (``SmtpSink``) and verify what it received.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from newsletter.config import Settings
from newsletter.deliverability import dkim as dk
from newsletter.deliverability.resolver import Resolver
from newsletter.errors import ConfigError, ValidationError
from newsletter.testing import sample_batch, sample_recipient
from newsletter.testing.dns_server import LocalDns
from newsletter.testing.smtp_sink import SmtpSink
from newsletter.transports import build_messenger, outbox, smtp
from newsletter.transports.base import Outcome
from newsletter.transports.smtp import SMTPMessenger
from newsletter.transports.wire import BatchWire
from tests.test_cli import _assert_one_line_error
from tests.test_cli import run_here as run

DOMAIN = "example.org"


@pytest.fixture(scope="module")
def rsa_key() -> dk.DkimKey:
    return dk.DkimKey(DOMAIN, "s2026", dk.generate("rsa"))


@pytest.fixture(scope="module")
def ed_key() -> dk.DkimKey:
    return dk.DkimKey(DOMAIN, "e2026", dk.generate("ed25519"))


@pytest.fixture
def local_dns() -> Iterator[LocalDns]:
    with LocalDns() as server:
        yield server


def publish(server: LocalDns, *keys: dk.DkimKey) -> Callable[..., bytes | None]:
    """Serve each key's TXT record; return dkimpy's ``dnsfunc`` asking that server."""
    for key in keys:
        server.add(key.name, "TXT", dk.txt_strings(key.txt_record()))
    return Resolver(server.address, timeout=2).dkim_txt


def verified(message: bytes, dnsfunc: Callable[..., Any], count: int) -> list[bool]:
    """dkimpy's verdict on each of the message's ``count`` signatures."""
    return [dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc) for i in range(count)]


# --- keys and records ------------------------------------------------------------


def test_keygen_writes_a_0600_key_and_prints_the_record_dns_serves(
    tmp_path: Path, local_dns: LocalDns
) -> None:
    result = run("dkim", "keygen", "--domain", DOMAIN, "--selector", "s1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "var" / "dkim" / DOMAIN / "s1.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f's1._domainkey.{DOMAIN}. IN TXT ( "v=DKIM1; k=rsa; p=')
    strings = line.split("( ", 1)[1].rsplit(" )", 1)[0].split('" "')
    strings = [s.strip('"') for s in strings]
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)  # a 2048-bit key
    key = dk.load_key(path, domain=DOMAIN, selector="s1")
    assert key.bits == 2048 and "".join(strings) == key.txt_record()
    # The printed strings, served as they are, verify what the key signs.
    local_dns.add(key.name, "TXT", strings)
    signed = dk.Signer([key]).sign(sample_message())
    assert dkim.verify(signed, dnsfunc=Resolver(local_dns.address).dkim_txt)

    again = run("dkim", "keygen", "--domain", DOMAIN, "--selector", "s1", cwd=tmp_path)
    _assert_one_line_error(again, "already exists", "new selector")
    assert dk.load_key(path, domain=DOMAIN, selector="s1").public_value() == key.public_value()


def test_keygen_ed25519_and_show(tmp_path: Path) -> None:
    made = run("dkim", "keygen", "--selector", "e1", "--algorithm", "ed25519", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "k=ed25519; p=" in made.stdout
    env = {"NEWSLETTER_DKIM_SELECTORS": '["e1"]'}
    shown = run("dkim", "show", cwd=tmp_path, env=env)
    assert shown.stdout.strip() == made.stdout.strip().splitlines()[-1]
    bad = run("dkim", "keygen", "--selector", "bad_selector!", cwd=tmp_path)
    _assert_one_line_error(bad, "not a DNS name")


def test_bad_keys_are_one_clear_line(tmp_path: Path) -> None:
    key_dir = tmp_path / "var" / "dkim" / DOMAIN
    key_dir.mkdir(parents=True)
    env = {"NEWSLETTER_DKIM_SELECTORS": '["s1"]', "NEWSLETTER_TRANSPORT": "outbox"}
    missing = run("worker", cwd=tmp_path, env=env)
    _assert_one_line_error(missing, "selector 's1'", "does not exist", "dkim keygen")
    (key_dir / "s1.pem").write_text("not a key\n")
    garbage = run("dkim", "show", cwd=tmp_path, env=env)
    _assert_one_line_error(garbage, "s1.pem", "not an unencrypted PEM private key")
    (key_dir / "s1.pem").unlink()
    (key_dir / "s1.pem").mkdir()  # unreadable as a file, even for root
    unreadable = run("dkim", "show", cwd=tmp_path, env=env)
    _assert_one_line_error(unreadable, "s1.pem", "cannot be read")


def test_small_rsa_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 2048"):
        dk.generate("rsa", 1024)
    path = tmp_path / "k.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        dk.load_key(path, domain=DOMAIN, selector="k")


def test_txt_strings_split_at_255_bytes() -> None:
    record = "v=DKIM1; k=rsa; p=" + "A" * 600
    parts = dk.txt_strings(record)
    assert [len(p) for p in parts] == [255, 255, 108] and "".join(parts) == record


# --- the signer ------------------------------------------------------------------


def sample_message(index: int = 1, **kwargs: Any) -> bytes:
    batch = sample_batch(1, recipients=[sample_recipient(index)], **kwargs)
    return smtp._render(batch, batch.recipients[0], f"<L{index}.abc@example.org>")


def test_rsa_and_ed25519_signatures_verify_and_cover_the_rfc_8058_headers(
    rsa_key: dk.DkimKey, ed_key: dk.DkimKey, local_dns: LocalDns
) -> None:
    dnsfunc = publish(local_dns, rsa_key, ed_key)
    signed = dk.Signer([rsa_key, ed_key]).sign(sample_message())
    assert verified(signed, dnsfunc, 2) == [True, True]
    parsed = dkim.DKIM(signed)
    parsed.verify(idx=0, dnsfunc=dnsfunc)
    signed_names = {name.lower() for name, _ in parsed.signed_headers}
    assert signed_names >= {
        b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
        b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
    }  # fmt: skip
    assert b"a=rsa-sha256" in signed and b"a=ed25519-sha256" in signed


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m: m.replace(b"Subject: Issue 42", b"Subject: Issue 43"), id="subject"),
        pytest.param(lambda m: m.replace(b"tok000001", b"tok999999"), id="body"),
        # Oversigned: a second From, a forged List-Unsubscribe or a Reply-To added on top.
        pytest.param(lambda m: b"From: Evil <evil@example.net>\r\n" + m, id="second-from"),
        pytest.param(
            lambda m: b"List-Unsubscribe: <https://evil.example/u>\r\n" + m, id="second-unsub"
        ),
        pytest.param(lambda m: b"Reply-To: evil@example.net\r\n" + m, id="added-reply-to"),
    ],
)
def test_any_change_to_signed_content_breaks_the_signature(
    rsa_key: dk.DkimKey, local_dns: LocalDns, tamper: Callable[[bytes], bytes]
) -> None:
    dnsfunc = publish(local_dns, rsa_key)
    signed = dk.Signer([rsa_key]).sign(sample_message(sender=_no_reply_to()))
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    # Tampering after the signature headers (they come first) keeps them first.
    sig_end = signed.index(b"\r\nFrom: ") + 2
    tampered = signed[:sig_end] + tamper(signed[sig_end:])
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def _no_reply_to() -> Any:
    from newsletter.transports.base import Sender

    return Sender(email="newsletter@example.org", name="KnowledgeWorks Newsletter")


def test_two_selectors_while_rotating(
    rsa_key: dk.DkimKey, tmp_path: Path, local_dns: LocalDns
) -> None:
    """Old and new selector both sign; whichever record a receiver finds, one passes."""
    new = dk.DkimKey(DOMAIN, "s2027", dk.generate("rsa"))
    signed = dk.Signer([rsa_key, new]).sign(sample_message())
    only_new = publish(local_dns, new)
    assert verified(signed, only_new, 2) == [False, True]
    assert dkim.verify(signed, dnsfunc=only_new) is False  # dkimpy's verify checks the first
    local_dns.add(rsa_key.name, "TXT", dk.txt_strings(rsa_key.txt_record()))
    assert verified(signed, only_new, 2) == [True, True]


def test_a_wrong_published_key_fails(rsa_key: dk.DkimKey, local_dns: LocalDns) -> None:
    other = dk.DkimKey(DOMAIN, rsa_key.selector, dk.generate("rsa"))
    dnsfunc = publish(local_dns, other)
    assert not dkim.verify(dk.Signer([rsa_key]).sign(sample_message()), dnsfunc=dnsfunc)


def test_the_signer_proves_itself_with_dkimpy(rsa_key: dk.DkimKey, monkeypatch: Any) -> None:
    """A signer whose signatures dkimpy would reject refuses to be built."""
    sign = dk.DkimKey.sign_digest
    monkeypatch.setattr(dk.DkimKey, "sign_digest", lambda k, d: sign(k, bytes(32)))
    with pytest.raises(ConfigError, match="self-check failed"):
        dk.Signer([rsa_key])


# --- in the transports -----------------------------------------------------------


def test_fast_wire_path_still_taken_and_signs_its_bytes(rsa_key: dk.DkimKey) -> None:
    signer = dk.Signer([rsa_key], clock=lambda: 1_700_000_000)
    batch = sample_batch(3)
    plain, signed = BatchWire(batch, smtp._render), BatchWire(batch, smtp._render, signer)
    assert plain.ready and signed.ready
    message = signed.render(batch.recipients[1], "<L1.abc@example.org>")
    assert message.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example.org")
    body = message[message.index(b"\r\nFrom: ") + 2 :]
    assert signer.sign(body) == message  # the wire bytes, signed as they are


def test_every_message_through_a_real_relay_verifies(
    rsa_key: dk.DkimKey, ed_key: dk.DkimKey, local_dns: LocalDns
) -> None:
    dnsfunc = publish(local_dns, rsa_key, ed_key)
    recipients = [sample_recipient(i) for i in range(20)]
    recipients.append(sample_recipient(99, name='Zoë O\'Brien, "Jr"'))  # the standard path
    with SmtpSink() as sink:
        messenger = SMTPMessenger(
            sink.host, sink.port, timeout=5, signer=dk.Signer([rsa_key, ed_key])
        )
        try:
            result = messenger.send(sample_batch(0, recipients=recipients))
        finally:
            messenger.close()
        assert {r.outcome for r in result.results} == {Outcome.ACCEPTED}
        assert len(sink.messages) == len(recipients)
        for received in sink.messages:
            assert verified(received.data, dnsfunc, 2) == [True, True], received.rcpt_tos


def test_outbox_files_verify(rsa_key: dk.DkimKey, local_dns: LocalDns, tmp_path: Path) -> None:
    dnsfunc = publish(local_dns, rsa_key)
    box = outbox.OutboxMessenger(tmp_path / "out", signer=dk.Signer([rsa_key]))
    result = box.send(sample_batch(5))
    assert {r.outcome for r in result.results} == {Outcome.ACCEPTED}
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 5
    assert all(dkim.verify(f.read_bytes(), dnsfunc=dnsfunc) for f in files)


def test_build_messenger_signs_with_the_active_selectors(
    make_settings: Callable[..., Settings], tmp_path: Path, local_dns: LocalDns
) -> None:
    key_dir = tmp_path / "keys"
    for selector, kind in (("s1", "rsa"), ("e1", "ed25519")):
        dk.write_key(dk.key_path(key_dir, "news.example.org", selector), dk.generate(kind))  # type: ignore[arg-type]
    settings = make_settings(
        transport="outbox",
        from_email="letters@news.example.org",
        dkim_selectors=["s1", "e1"],
        dkim_key_dir=key_dir,
    )
    messenger = build_messenger(settings)
    assert isinstance(messenger, outbox.OutboxMessenger) and messenger.signer is not None
    keys = dk.keys_from(settings)
    assert [k.name for k in keys] == [
        "s1._domainkey.news.example.org",
        "e1._domainkey.news.example.org",
    ]
    dnsfunc = publish(local_dns, *keys)
    messenger.send(sample_batch(1))
    (eml,) = settings.outbox_path.glob("*.eml")
    assert verified(eml.read_bytes(), dnsfunc, 2) == [True, True]
    assert build_messenger(make_settings(transport="outbox")).signer is None  # type: ignore[attr-defined]


def test_keys_are_never_group_or_world_readable(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "d" / "s.pem"
        dk.write_key(path, dk.generate("ed25519"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_plain_headers_take_the_short_way_and_others_dkimpys(
    rsa_key: dk.DkimKey, local_dns: LocalDns
) -> None:
    dnsfunc = publish(local_dns, rsa_key)
    signer = dk.Signer([rsa_key])
    plain = sample_message()
    assert signer._plain_headers(plain.partition(b"\r\n\r\n")[0]) is not None
    folded = plain.replace(b"Subject: Issue 42", b"Subject:  Issue\r\n\t 42  folded", 1)
    assert signer._plain_headers(folded.partition(b"\r\n\r\n")[0]) is None
    twice = b"To: someone@example.net\r\n" + plain
    for message in (plain, folded, twice):
        assert dkim.verify(signer.sign(message), dnsfunc=dnsfunc)


def test_a_campaign_with_a_missing_key_does_not_start(issue42: Any, settings: Settings) -> None:
    from newsletter.sending import campaigns, service

    with issue42.session() as session:
        cid = campaigns.create_campaign(42, session=session).id
    broken = settings.model_copy(update={"transport": "outbox", "dkim_selectors": ["gone"]})
    with pytest.raises(ConfigError, match=r"selector 'gone'.*does not exist"):
        service.start(issue42, broken, cid)
    with issue42.session() as session:
        assert campaigns.get_campaign(cid, session=session).status == "draft"
