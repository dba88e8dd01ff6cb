"""build_mime / to_bytes: what every transport puts on the wire (SMTP, outbox)."""

from __future__ import annotations

import dataclasses
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import ValidationError
from newsletter.message import RenderedEmail, Template
from newsletter.testing import SAMPLE_SENDER, sample_email, sample_recipient
from newsletter.transports.base import Sender, message_id
from newsletter.transports.mime import build_mime, to_bytes

# Everything str.splitlines() splits on, plus NUL: the email package refuses all of them.
LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
}
LIST_HEADERS = {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"}


def _wire(
    rendered: RenderedEmail,
    *,
    sender: Sender = SAMPLE_SENDER,
    to: str = "reader@example.org",
    to_name: str | None = "Reader",
    msg_id: str = "<L1.abc@example.org>",
) -> bytes:
    return to_bytes(build_mime(rendered, sender=sender, to=to, to_name=to_name, msg_id=msg_id))


def _parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)


def _filled(long_line: int = 0) -> RenderedEmail:
    rcpt = sample_recipient(1)
    template = Template.compile(sample_email(long_line=long_line))
    return template.fill({**rcpt.values, "email": rcpt.email})


def test_message_round_trips_with_both_parts_and_list_headers() -> None:
    filled = _filled()
    msg_id = message_id("L1", SAMPLE_SENDER)
    message = _parse(_wire(filled, msg_id=msg_id))

    assert set(message.keys()) == HEADERS | LIST_HEADERS
    assert message["Message-ID"] == msg_id
    assert message["Subject"] == "Issue 42 for Reader 1"
    assert message["To"] == "Reader <reader@example.org>"
    assert message["From"] == f"{SAMPLE_SENDER.name} <{SAMPLE_SENDER.email}>"
    assert message["List-Unsubscribe"] == "<https://news.example.org/u/tok000001>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n").rstrip("\n") == filled.text.rstrip("\n")
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == filled.html.rstrip("\n")
    assert (
        text["Content-Transfer-Encoding"] == html["Content-Transfer-Encoding"] == "quoted-printable"
    )


def test_wire_has_only_crlf_and_no_line_over_998_bytes() -> None:
    data = _wire(_filled(long_line=50_000))

    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii()  # QP bodies, encoded-word headers: no 8BITMIME needed


def test_message_id_names_the_ledger_row_and_is_unique() -> None:
    first, second = message_id("L-42", SAMPLE_SENDER), message_id("L-42", SAMPLE_SENDER)

    assert first != second
    assert first.startswith("<L-42.") and first.endswith("@example.org>")
    assert message_id("a b\r\n<c>", SAMPLE_SENDER).startswith("<abc.")


BAD = ["\r\n", "\n", "\r", "\x00", "\r\nBcc: victim@evil.test"]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(
    "where",
    [
        "subject",
        "header value",
        "header name",
        "to name",
        "to",
        "sender name",
        "reply-to",
        "msg-id",
    ],
)
def test_cr_lf_nul_never_reach_a_header(bad: str, where: str) -> None:
    rendered = RenderedEmail(
        subject="Hi", html="<p>h</p>", text="t", headers={"List-Id": "x <x.org>"}
    )
    sender, to, to_name, msg_id = SAMPLE_SENDER, "reader@example.org", "Reader", "<1@example.org>"
    evil = f"x{bad}y"
    if where == "subject":
        rendered = dataclasses.replace(rendered, subject=evil)
    elif where == "header value":
        rendered = dataclasses.replace(rendered, headers={"List-Id": evil})
    elif where == "header name":
        rendered = dataclasses.replace(rendered, headers={evil: "x"})
    elif where == "to name":
        to_name = evil
    elif where == "to":
        to = f"reader{bad}@example.org"
    elif where == "sender name":
        sender = dataclasses.replace(sender, name=evil)
    elif where == "reply-to":
        sender = dataclasses.replace(sender, reply_to=f"r{bad}@example.org")
    else:
        msg_id = f"<1{bad}@example.org>"

    with pytest.raises(ValidationError):
        _wire(rendered, sender=sender, to=to, to_name=to_name, msg_id=msg_id)


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\x00"])
def test_template_refuses_unsafe_subject_and_headers_and_recipient_fields(bad: str) -> None:
    base = sample_email()
    with pytest.raises(ValidationError):
        Template.compile(dataclasses.replace(base, subject=f"Hi{bad}Bcc: x"))
    with pytest.raises(ValidationError):
        Template.compile(dataclasses.replace(base, headers={"List-Id": f"x{bad}Bcc: x"}))
    template = Template.compile(base)
    with pytest.raises(ValidationError):
        template.fill({"name": f"Eve{bad}Bcc: x", "email": "e@example.org"})
    with pytest.raises(ValidationError):
        template.fill({"name": "Eve", "email": f"e@example.org{bad}Bcc: x"})


@settings(max_examples=150, deadline=None)
@given(name=st.text(max_size=60), subject=st.text(min_size=1, max_size=300))
def test_any_name_or_subject_either_fails_validation_or_adds_no_header(
    name: str, subject: str
) -> None:
    """The property behind "no header injection": the set of header names never grows."""
    rendered = RenderedEmail(subject=subject, html="<p>h</p>", text="t")
    try:
        data = _wire(rendered, to_name=name or None)
    except (ValidationError, ValueError):  # ValueError: see the U+2028 test below
        assert any(ch in name + subject for ch in LINE_BREAKS)
        return
    assert not any(ch in name + subject for ch in "\r\n\x00")
    assert set(_parse(data).keys()) == HEADERS
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_long_list_unsubscribe_url_stays_literal_on_the_wire() -> None:
    """Folded at 78, a long URL went out as RFC 2047 encoded-words mail clients cannot use."""
    url = "https://news.example.org/unsubscribe/" + "eyJzIjoxMjM0NTY3ODkwfQ.Zk9xYw" * 3
    rendered = RenderedEmail(
        subject="s", html="h", text="t", headers={"List-Unsubscribe": f"<{url}>"}
    )

    assert f"List-Unsubscribe: <{url}>\r\n".encode() in _wire(rendered)


@pytest.mark.parametrize("bad", ["\u2028", "\x85", "\x0b"])
def test_unicode_line_breaks_are_a_validation_error(bad: str) -> None:
    rendered = RenderedEmail(subject=f"Hi{bad}there", html="<p>h</p>", text="t")
    with pytest.raises(ValidationError):
        _wire(rendered)
