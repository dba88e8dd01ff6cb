"""Hand-optimised hot paths held to the claim each makes: the same output as the standard path.

Three places trade the obvious code for speed: ``BatchWire`` (SMTP/outbox bytes
without the email package), ``_LinkTokens`` (pre-keyed HMAC link tokens) and
SendGrid's ``_Personalizer``.  Each proves itself at run time and falls back
to the standard path when the proof fails, so equal output alone would not
show that the fast path works: these tests also check *which* path was taken
(a broken fast path that always falls back would only be a silent slowdown).
"""

from __future__ import annotations

import enum
import functools
import json
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from email import policy, quoprimime
from email.message import EmailMessage
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from newsletter.errors import TokenError, ValidationError
from newsletter.message import FIELDS, RenderedEmail, Template, placeholder, substitutions
from newsletter.sending.prepare import _LinkTokens
from newsletter.subscribers.tokens import HASH_PREFIX, Purpose, TokenBearer, Tokens
from newsletter.testing import SAMPLE_SENDER, sample_email, sample_recipient
from newsletter.transports import mime, outbox, smtp
from newsletter.transports import wire as wire_module
from newsletter.transports.base import MessageBatch, Recipient, Sender
from newsletter.transports.sendgrid import LEDGER_ARG, _address, _check_header, _Personalizer
from newsletter.transports.wire import BatchWire, new_boundary, qp_body
from tests.sending_helpers import SENDER, TEMPLATE

Render = Callable[[MessageBatch, Recipient, str], bytes]
Result = bytes | tuple[str, str]  # the bytes, or (exception type, message)
JSON = dict[str, Any]

DATE = "Fri, 03 Apr 2026 13:00:00 -0000"
MSG_ID = "<L1.0123456789abcdef@example.org>"
SEED = 20180401
RENDERS = [pytest.param(smtp._render, id="smtp"), pytest.param(outbox._render, id="outbox")]


def _reader(index: int, name: str | None = "", *, email: str = "", **values: str) -> Recipient:
    """``sample_recipient`` with another name (None: no name at all), address or URLs."""
    base = sample_recipient(index)
    merged = {**base.values, **values}
    if name is None:
        del merged["name"]
    else:
        merged["name"] = name
    return Recipient(base.ref, email or base.email, merged)


# =============================================================================== 1. wire


class CountingRender:
    """The standard rendering, counting its calls: shows which recipients skipped the email package."""

    def __init__(self, render: Render) -> None:
        self.render = render
        self.calls = 0

    def __call__(self, batch: MessageBatch, rcpt: Recipient, msg_id: str) -> bytes:
        self.calls += 1
        return self.render(batch, rcpt, msg_id)


def _fixed_date(localtime: bool = False) -> str:
    return DATE


def _result(make: Callable[[], bytes]) -> Result:
    try:
        return make()
    except Exception as exc:  # the standard path's refusal must be the fast path's too
        return (type(exc).__name__, str(exc))


@contextmanager
def _same_date_and_boundary() -> Iterator[None]:
    """Pin what the module says always differs: the Date (both paths) and the random state."""
    state = random.getstate()
    try:
        with (
            mock.patch.object(wire_module, "formatdate", _fixed_date),
            mock.patch.object(mime, "formatdate", _fixed_date),
        ):
            yield
    finally:
        random.setstate(state)


def _both(
    wire: BatchWire, standard: Render, rcpt: Recipient, msg_id: str = MSG_ID
) -> tuple[Result, Result]:
    """The fast and the standard rendering, each drawing its boundary from the same seed."""
    with _same_date_and_boundary():
        random.seed(SEED)
        fast = _result(lambda: wire.render(rcpt, msg_id))
        random.seed(SEED)
        slow = _result(lambda: standard(wire.batch, rcpt, msg_id))
    return fast, slow


def _long_name(words: int) -> str:
    return " ".join(["Bartholomew"] * words)


# Plain recipients: every header the fast path writes is plain ASCII words under 900 bytes.
FAST = [
    _reader(1, "Reader 1"),
    _reader(2, "Ann"),
    _reader(3, "A1 b2 C3"),
    _reader(4, _long_name(70)),  # 839 characters: long, but no header gets folded
    _reader(5, "Lee", email="first.last+news_1@mail-host.example.co.uk"),
    # Body-only values that need HTML escaping and quoted-printable (=, unicode):
    _reader(
        6,
        "Amp",
        web_url='https://x.org/a?b=1&c="2"<3>\'',
        preferences_url="https://x.org/p/Zoë/café/😀",
    ),
    # Line breaks in a body value (the part is then encoded whole) and dot/From lines:
    _reader(7, "Dot", web_url="https://x.org/w\n.dotted line\r\nFrom here\r", preferences_url="\n"),
    # A line over 998 characters with '=' and a trailing space: soft line breaks.
    _reader(8, "Long", preferences_url="https://x.org/p/" + "a=b " * 400, web_url="é" * 700 + "\t"),
    _reader(9, "Tab", web_url="=" * 997, preferences_url=" " * 1200),
]
# Not plain: quoted, encoded or folded by the email package, or refused.
STANDARD = [
    _reader(20, "Zoë Ünïcode"),
    _reader(21, 'O\'Brien, "Bob" \\ Jr.'),
    _reader(22, "Smith, John"),
    _reader(23, "Ann  Lee"),  # two spaces
    _reader(24, " Ann"),
    _reader(25, _long_name(100)),  # over 998: the email package folds it
    _reader(26, _long_name(80)),  # unfolded, but over the fast path's 900
    _reader(27, "Zoë", email="zoë@example.org"),
    _reader(28, "Root", email="root@localhost"),
    _reader(29, "Reader", unsubscribe_url="https://x.org/u/café"),  # a non-ASCII header value
    _reader(30, "Reader", unsubscribe_url="https://x.org/u/a  b"),
    _reader(31, "Reader", unsubscribe_url="https://x.org/u/=?utf-8?q?x?="),
    _reader(32, "Eve\r\nBcc: victim@evil.test"),
    _reader(33, "Eve", unsubscribe_url="https://x.org/u/1\r\nBcc: victim@evil.test"),
    _reader(34, "Eve", email="eve@example.org\nBcc: victim@evil.test"),
]
# Plain or not depending on the template (an empty name leaves "Issue 42 for " with a trailing space).
EITHER = [_reader(40, ""), _reader(41, None)]
EVERYONE = FAST + STANDARD + EITHER

_TEXT = (
    f"Hello {placeholder('name')},\n"
    ".a line that starts with a dot\n"
    "From the editor, a line that mbox would mangle\n"
    "trailing space \ntrailing tab\t\n"
    "equals a=b == and =3D\n"
    "Zoë — café ✓ 😀\n"
    + "y" * 996
    + " \n"
    + "z" * 1500
    + f"\nweb: {placeholder('web_url')}\nprefs: {placeholder('preferences_url')} \n\n"
)
_HTML = (
    f"<p>Hi {placeholder('name', html=True)}</p>\n"
    f'.<a href="{placeholder("web_url", html=True)}">web</a>\n'
    + "<div>"
    + "caf\u00e9 =x " * 600
    + "</div>\n"
    + f'<a href="{placeholder("preferences_url", html=True)}">prefs</a>'
)


def _awkward(*, crlf: bool = False) -> RenderedEmail:
    """Everything the encoder must get right at once: unicode, '=', long and dotted lines."""
    return RenderedEmail(
        subject="Zoë's café — Issue 42, a subject long enough to be folded at seventy-eight columns",
        html=_HTML,
        text=_TEXT.replace("\n", "\r\n") if crlf else _TEXT,
        headers={
            "List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "Zoë's List <list.example.org>",
        },
    )


@dataclass(frozen=True)
class Case:
    template: Template
    sender: Sender
    ready: bool  # whether the probe should prove the fast path for this template


CASES = {
    "issue42": Case(Template.compile(sample_email()), SAMPLE_SENDER, True),
    "minified-html": Case(Template.compile(sample_email(long_line=5000)), SAMPLE_SENDER, True),
    "sending-helpers": Case(TEMPLATE, SENDER, True),
    "awkward-lf": Case(Template.compile(_awkward()), SAMPLE_SENDER, True),
    "awkward-crlf": Case(Template.compile(_awkward(crlf=True)), SAMPLE_SENDER, True),
    "long-ascii-subject": Case(
        Template.compile(
            RenderedEmail(
                subject="word " * 150 + "end",
                html="<p>h</p>",
                text="t",
                headers={"List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>"},
            )
        ),
        SENDER,
        True,
    ),
    # Not plain for anyone: the subject is encoded for every recipient.
    "unicode-subject-with-name": Case(
        Template.compile(
            RenderedEmail(subject=f"Für {placeholder('name')} — café", html="h", text="t")
        ),
        SENDER,
        False,
    ),
    # A batch-wide header the email package folds: learning refuses the batch.
    "folded-subject": Case(
        Template.compile(RenderedEmail(subject="word " * 250 + "end", html="h", text="t")),
        SENDER,
        False,
    ),
}


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_wire_bytes_are_the_standard_bytes(render: Render, case: Case) -> None:
    """Byte for byte once the Date and the boundary draw are the same, for every recipient."""
    batch = MessageBatch(case.template, case.sender, EVERYONE)
    wire = BatchWire(batch, render)
    assert wire.ready is case.ready

    for rcpt in EVERYONE:
        fast, slow = _both(wire, render, rcpt)
        assert fast == slow, f"{rcpt.email} {rcpt.values.get('name')!r}"


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_only_plain_recipients_skip_the_email_package(render: Render, case: Case) -> None:
    """The fast path really is taken for plain recipients, and never for the others."""
    standard = CountingRender(render)
    wire = BatchWire(MessageBatch(case.template, case.sender, EVERYONE), standard)
    for rcpt in FAST + STANDARD:
        before = standard.calls
        _result(functools.partial(wire.render, rcpt, MSG_ID))
        went_standard = standard.calls - before
        expected = 0 if case.ready and rcpt in FAST else 1
        assert went_standard == expected, f"{rcpt.email} {rcpt.values.get('name')!r}"


@pytest.mark.parametrize("render", RENDERS)
def test_a_probe_that_disagrees_sends_the_whole_batch_the_standard_way(render: Render) -> None:
    """The self-check: if the learnt layout does not reproduce the probe, nobody goes fast."""

    def tampered(batch: MessageBatch, rcpt: Recipient, msg_id: str) -> bytes:
        return render(batch, rcpt, msg_id).replace(b"Hello", b"Howdy")

    standard = CountingRender(tampered)
    wire = BatchWire(MessageBatch(CASES["issue42"].template, SAMPLE_SENDER, FAST), standard)

    assert not wire.ready
    for rcpt in FAST:
        before = standard.calls
        fast, slow = _both(wire, tampered, rcpt)
        assert fast == slow
        assert isinstance(fast, bytes) and b"Howdy" in fast
        assert standard.calls == before + 1


@pytest.mark.parametrize("render", RENDERS)
def test_refused_probes_are_skipped_and_still_refused(render: Render) -> None:
    """A plain recipient whose standard rendering raises cannot teach the layout; the next one does."""
    bad = _reader(50, "Eve", unsubscribe_url="https://x.org/u/1\nBcc: victim@evil.test")
    batch = MessageBatch(CASES["issue42"].template, SAMPLE_SENDER, [bad, *FAST])
    wire = BatchWire(batch, render)

    assert wire.ready
    fast, slow = _both(wire, render, bad)
    assert isinstance(fast, tuple) and fast[0] == ValidationError.__name__
    assert fast == slow
    for rcpt in FAST:
        fast, slow = _both(wire, render, rcpt)
        assert fast == slow


@pytest.mark.parametrize("render", RENDERS)
def test_a_batch_without_plain_recipients_goes_the_standard_way(render: Render) -> None:
    batch = MessageBatch(CASES["issue42"].template, SAMPLE_SENDER, STANDARD)
    wire = BatchWire(batch, render)

    assert not wire.ready
    for rcpt in STANDARD:
        fast, slow = _both(wire, render, rcpt)
        assert fast == slow


@pytest.mark.parametrize(
    "msg_id",
    [
        MSG_ID,
        "<..x@example.org>",
        "<a@b..>",
        "<-_.@->",
        "<a b@example.org>",
        "no-brackets@x.org",
        "<é@x.org>",
    ],
)
def test_message_ids_the_fast_path_cannot_vouch_for_go_the_standard_way(msg_id: str) -> None:
    standard = CountingRender(smtp._render)
    wire = BatchWire(MessageBatch(CASES["issue42"].template, SAMPLE_SENDER, FAST), standard)
    before = standard.calls

    fast, slow = _both(wire, smtp._render, FAST[0], msg_id)

    assert fast == slow
    odd = msg_id in ("<a b@example.org>", "no-brackets@x.org", "<é@x.org>")
    assert standard.calls == before + odd


def test_new_boundary_is_the_generators_boundary() -> None:
    """Same random draw, same boundary: what lets the fast bytes equal the standard bytes."""
    state = random.getstate()
    try:
        for seed in range(20):
            msg = EmailMessage(policy=policy.SMTP)
            msg.set_content("x")
            msg.add_alternative("<p>x</p>", subtype="html")
            random.seed(seed)
            boundary = new_boundary()
            random.seed(seed)
            assert f'boundary="{boundary}"'.encode() in msg.as_bytes()
    finally:
        random.setstate(state)


# Characters that stress quoted-printable: '=', whitespace at line ends, bytes to escape.
_QP_ALPHABET = st.sampled_from(
    [*"xy =\t.\r\n", "é", "€", "😀", "\x7f", "\x0b", "\x85", "\u2028", "\x00"]
)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(_QP_ALPHABET, max_size=300), maxlinelen=st.one_of(st.integers(4, 40), st.just(998))
)
def test_qp_body_is_contentmanagers_quoted_printable(text: str, maxlinelen: int) -> None:
    """The documented identity, with short lines so every soft-break branch is reached."""
    lines = text.encode("utf-8").splitlines()
    normal_body = (b"\n".join(lines) + b"\n").decode("latin-1")
    assert qp_body(text, maxlinelen) == quoprimime.body_encode(normal_body, maxlinelen)


_PIECES = st.one_of(
    st.text(_QP_ALPHABET, max_size=12),
    st.sampled_from(
        [
            placeholder(n, html=h)
            for n in ("name", "web_url", "preferences_url")
            for h in (False, True)
        ]
    ),
    st.builds(
        lambda s, n: s * n, st.sampled_from(["x", "=", " ", "é", "a= ", "\t"]), st.integers(0, 1010)
    ),
)
_BODIES = st.lists(_PIECES, max_size=6).map("".join)
_VALUES = st.one_of(
    st.text(_QP_ALPHABET, max_size=12),
    st.builds(lambda s, n: s * n, st.sampled_from(["x", "=", " ", "é"]), st.integers(990, 1005)),
)
_PLAIN_NAMES = st.from_regex(r"[A-Za-z0-9]{1,8}( [A-Za-z0-9]{1,8}){0,2}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    text=_BODIES, html=_BODIES, name=_PLAIN_NAMES, web=_VALUES, prefs=_VALUES, crlf=st.booleans()
)
def test_any_body_and_values_render_the_same_both_ways(
    text: str, html: str, name: str, web: str, prefs: str, crlf: bool
) -> None:
    """Bodies are where the fast path does its own encoding: hunt for a difference."""
    rendered = RenderedEmail(
        subject="Issue 42",
        html=html,
        text=text.replace("\n", "\r\n") if crlf else text,
        headers={"List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>"},
    )
    people = [
        _reader(1, "Probe", web_url=prefs, preferences_url=web),
        _reader(2, name, web_url=web, preferences_url=prefs),
    ]
    standard = CountingRender(smtp._render)
    wire = BatchWire(MessageBatch(Template.compile(rendered), SAMPLE_SENDER, people), standard)
    assert wire.ready

    before = standard.calls
    for rcpt in people:
        fast, slow = _both(wire, smtp._render, rcpt)
        assert fast == slow
    assert standard.calls == before  # both were plain: neither went the standard way


@pytest.mark.parametrize("header", ["Cc", "Bcc", "Reply-To", "Sender"])
def test_placeholders_in_structured_headers_render_the_same_both_ways(header: str) -> None:
    """The email package parses address headers and may rewrite a filled value: standard way."""
    rendered = RenderedEmail(
        subject="s", html="h", text="t", headers={header: placeholder("web_url")}
    )
    people = [_reader(1, "Probe", web_url="copy@example.org"), _reader(2, "Reader", web_url="(")]
    wire = BatchWire(
        # No sender Reply-To: the template's own is the one under test.
        MessageBatch(Template.compile(rendered), replace(SAMPLE_SENDER, reply_to=None), people),
        outbox._render,
    )

    assert not wire.ready  # once "Cc: (" went out where the email package wrote "Cc: ()"
    for rcpt in people:
        fast, slow = _both(wire, outbox._render, rcpt)
        assert fast == slow


# ======================================================================== 2. link tokens

SECRET = "s3cret-for-fast-path-tests"
NOW = 1_900_000_000.0
LINK_PURPOSES = [Purpose.UNSUBSCRIBE, Purpose.PREFERENCES]  # what IssuePreparer signs per recipient


@dataclass(frozen=True)
class Bearer:
    id: Any  # an int in production; other types are here to reach the fallback
    email_hash: str


class CountingTokens(Tokens):
    """``Tokens`` that counts ``make``: shows which tokens went the slow way."""

    made = 0

    def make(self, purpose: Purpose, subscriber: TokenBearer) -> str:
        self.made += 1
        return super().make(purpose, subscriber)


def _tokens() -> Tokens:
    return Tokens(SECRET, confirm_max_age=timedelta(days=7), clock=lambda: NOW)


def _counting() -> CountingTokens:
    return CountingTokens(SECRET, confirm_max_age=timedelta(days=7), clock=lambda: NOW)


TOKENS = _tokens()  # shared by the property test: building one per example is slow
IDS = [0, 1, 2, 42, 10**6, 2**31 - 1, 2**31, 2**40 + 7, 2**63 - 1, 2**64, 10**30, -1]
HASHES = [
    "0123456789abcdef" * 4,
    "f" * 64,
    "ABCDEF0123456789" * 4,  # upper-case hex
    "0" * 16,
    "deadbeef" * 8,
    "abc",  # shorter than the prefix
    "zzzzzzzzzzzzzzzzqq",  # alphanumeric, not hex
]


@pytest.mark.parametrize("purpose", LINK_PURPOSES)
def test_link_tokens_are_tokens_make_byte_for_byte(purpose: Purpose) -> None:
    reference, counting = _tokens(), _counting()
    link = _LinkTokens(counting, SECRET, purpose)
    assert link.fast
    made_by_probe = counting.made

    for subscriber_id in IDS:
        for email_hash in HASHES:
            assert link.make(subscriber_id, email_hash) == reference.make(
                purpose, Bearer(subscriber_id, email_hash)
            )
    assert counting.made == made_by_probe  # all of them the fast way


@pytest.mark.parametrize("purpose", LINK_PURPOSES)
def test_link_tokens_verify_and_bind_to_their_subscriber(purpose: Purpose) -> None:
    """What the web app does with the link: load, then match against the subscriber."""
    tokens = _tokens()
    link = _LinkTokens(tokens, SECRET, purpose)
    stock = URLSafeSerializer(SECRET, salt=f"newsletter.{purpose}")
    other = next(p for p in Purpose if p is not purpose)

    for subscriber_id in IDS:
        bearer = Bearer(subscriber_id, "0123456789abcdef" * 4)
        token = link.make(bearer.id, bearer.email_hash)
        claims = tokens.load(purpose, token)
        assert claims.subscriber_id == subscriber_id
        assert tokens.matches(claims, bearer)
        assert not tokens.matches(claims, Bearer(subscriber_id, "f" * 64))
        assert stock.loads(token) == [subscriber_id, bearer.email_hash[:HASH_PREFIX]]
        with pytest.raises(TokenError):
            tokens.load(other, token)


class Kind(enum.IntEnum):
    SEVEN = 7


class Id(int):
    """An int subclass, such as a driver might return: not formatted by hand."""


# (subscriber id, email hash, whether Tokens.load accepts what Tokens.make made)
FALLBACKS = [
    pytest.param(7, "é" * 16 + "0" * 48, True, id="non-ascii-prefix"),
    pytest.param(7, "０１２３４５６７８９ａｂｃｄｅｆ" * 4, True, id="fullwidth-alnum-prefix"),
    pytest.param(7, "0123-4567-89ab-c" * 4, True, id="hyphens"),
    pytest.param(7, '012345678"abcdef' * 4, True, id="quote"),
    pytest.param(7, "012345678\\abcdef" * 4, True, id="backslash"),
    pytest.param(7, "0123 4567 89abcd" * 4, True, id="spaces"),
    pytest.param(Id(7), "0123456789abcdef" * 4, True, id="int-subclass"),
    pytest.param(Kind.SEVEN, "0123456789abcdef" * 4, True, id="int-enum"),
    pytest.param(True, "0123456789abcdef" * 4, True, id="bool"),
    pytest.param(7, "", False, id="empty-hash"),
    pytest.param("7", "0123456789abcdef" * 4, False, id="str-id"),
    pytest.param(7.0, "0123456789abcdef" * 4, False, id="float-id"),
]


@pytest.mark.parametrize("purpose", LINK_PURPOSES)
@pytest.mark.parametrize(("subscriber_id", "email_hash", "loads"), FALLBACKS)
def test_bearers_it_cannot_format_go_through_tokens_make(
    purpose: Purpose, subscriber_id: Any, email_hash: str, loads: bool
) -> None:
    reference, counting = _tokens(), _counting()
    link = _LinkTokens(counting, SECRET, purpose)
    before = counting.made

    token = link.make(subscriber_id, email_hash)

    assert counting.made == before + 1
    assert token == reference.make(purpose, Bearer(subscriber_id, email_hash))
    if loads:
        claims = reference.load(purpose, token)
        assert claims.subscriber_id == subscriber_id
        assert claims.hash_prefix == email_hash[:HASH_PREFIX]
        assert reference.matches(claims, Bearer(subscriber_id, email_hash))
    else:  # the shape check refuses it, exactly as for a token Tokens.make made
        with pytest.raises(TokenError):
            reference.load(purpose, token)


def test_confirm_tokens_fail_the_probe_and_still_come_out_right() -> None:
    """Confirmation tokens are timed, the hand-made format is not: the probe must catch that."""
    reference, counting = _tokens(), _counting()
    link = _LinkTokens(counting, SECRET, Purpose.CONFIRM)

    assert not link.fast
    token = link.make(2**40 + 7, "0123456789abcdef" * 4)
    assert token == reference.make(Purpose.CONFIRM, Bearer(2**40 + 7, "0123456789abcdef" * 4))
    assert reference.load(Purpose.CONFIRM, token).subscriber_id == 2**40 + 7


@pytest.mark.parametrize("purpose", LINK_PURPOSES)
def test_a_secret_that_is_not_the_tokens_secret_fails_the_probe(purpose: Purpose) -> None:
    """Keyed with the wrong secret the fast path would sign links nobody can open."""
    tokens = _tokens()
    link = _LinkTokens(tokens, "not-the-secret", purpose)

    assert not link.fast
    token = link.make(5, "0123456789abcdef" * 4)
    assert tokens.load(purpose, token).subscriber_id == 5


@settings(max_examples=200, deadline=None)
@given(
    subscriber_id=st.one_of(st.integers(), st.integers(-(2**80), 2**80)),
    email_hash=st.one_of(st.text("0123456789abcdefABCDEF", max_size=70), st.text(max_size=20)),
    purpose=st.sampled_from(list(Purpose)),
)
def test_any_bearer_gets_tokens_makes_token(
    subscriber_id: int, email_hash: str, purpose: Purpose
) -> None:
    link = _LinkTokens(TOKENS, SECRET, purpose)
    assert link.make(subscriber_id, email_hash) == TOKENS.make(
        purpose, Bearer(subscriber_id, email_hash)
    )


# ===================================================================== 3. SendGrid


def _slow_personalization(batch: MessageBatch, rcpt: Recipient) -> JSON:
    """The obvious code ``_Personalizer`` replaced (``_personalization`` in fb842be), as reference."""
    source = batch.template.source
    used = {
        key
        for key in substitutions({})
        if key in source.subject or key in source.text or key in source.html
    }
    headers = Template.compile(RenderedEmail(subject="", html="", text="", headers=source.headers))
    values = {**rcpt.values, "email": rcpt.email}
    filled = headers.fill(values).headers  # refuses CR/LF in name and email
    name = _check_header("name", values.get("name") or "")
    item: JSON = {"to": [_address(rcpt.email, name)]}
    subs = {k: v for k, v in substitutions(values).items() if k in used}
    if subs:
        item["substitutions"] = subs
    if filled:
        item["headers"] = {k: _check_header(k, v) for k, v in filled.items()}
    custom = {str(k): str(v) for k, v in batch.custom_args.items()}
    item["custom_args"] = {**custom, LEDGER_ARG: str(rcpt.ref)}
    return item


def _sg_template(**parts: Any) -> Template:
    base: dict[str, Any] = {"subject": "s", "html": "", "text": "", "headers": {}}
    return Template.compile(RenderedEmail(**{**base, **parts}))


SG_TEMPLATES = {
    "issue42": Template.compile(sample_email()),
    "sending-helpers": TEMPLATE,
    "html-in-headers": _sg_template(
        subject="Weekly",
        html=f"<p>{placeholder('email', html=True)} {placeholder('web_url', html=True)}</p>",
        text=f"{placeholder('web_url')} %%bogus%% %%name:htm%% %%preferences_url:html%%",
        headers={
            "X-Recipient": f"{placeholder('name', html=True)} <{placeholder('email')}>",
            "List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>, <{placeholder('preferences_url', html=True)}>",
            "List-Id": "fixed <list.example.org>",
        },
    ),
    "every-placeholder": _sg_template(
        subject=" ".join(placeholder(n) for n in FIELDS),
        html=" ".join(placeholder(n, html=True) for n in reversed(FIELDS)),
    ),
    "no-placeholders": _sg_template(subject="Hello", html="<p>hi</p>", text="hi"),
    "headers-only": _sg_template(
        headers={"List-Unsubscribe": f"<{placeholder('unsubscribe_url')}>"}
    ),
}

SG_PEOPLE = [
    _reader(1, "Reader 1"),
    _reader(2, '<b>Tom & Jerry\'s</b> "show"'),
    _reader(3, ""),
    _reader(4, None),
    _reader(5, "Zoë Ünïcode 😀"),
    _reader(6, "Smith, John; Jr"),  # SendGrid refuses , and ; in to.name
    _reader(7, "  ;  "),
    _reader(8, "Ann", email="Ann.Lee+x@Example.ORG"),
    _reader(
        9, "Amp", web_url="https://x.org/a?b=1&c='2'", unsubscribe_url="https://x.org/u/é<>&\"'"
    ),
    Recipient("L10", "real@example.org", {"name": "Spoof", "email": "fake@example.org", "x": "y"}),
    Recipient("L11", "bare@example.org", {}),
]


@pytest.mark.parametrize("template", SG_TEMPLATES.values(), ids=SG_TEMPLATES.keys())
def test_personalizer_is_template_fill_and_substitutions(template: Template) -> None:
    """Equal as JSON text, so the order of keys (substitutions first plain, then html) counts too."""
    batch = MessageBatch(
        template, SENDER, SG_PEOPLE, custom_args={"campaign_id": "7", LEDGER_ARG: "spoofed"}
    )
    personalize = _Personalizer(batch)

    for rcpt in SG_PEOPLE:
        fast, slow = personalize(rcpt), _slow_personalization(batch, rcpt)
        assert json.dumps(fast) == json.dumps(slow)


BAD_PEOPLE = [
    pytest.param(_reader(1, "Eve\r\nBcc: victim@evil.test"), id="crlf-name"),
    pytest.param(_reader(1, "Eve\n"), id="lf-name"),
    pytest.param(_reader(1, "Eve\r"), id="cr-name"),
    pytest.param(_reader(1, "Eve\x00"), id="nul-name"),
    pytest.param(_reader(1, "Eve\u2028"), id="unicode-break-name"),
    pytest.param(
        _reader(1, "Eve", email="eve@example.org\r\nBcc: victim@evil.test"), id="crlf-email"
    ),
    pytest.param(_reader(1, "Eve\n", email="eve@example.org\n"), id="both"),
    pytest.param(
        _reader(1, "Eve", unsubscribe_url="https://x.org/u\r\nBcc: x"), id="crlf-header-value"
    ),
    pytest.param(
        _reader(1, "Eve", unsubscribe_url="https://x.org/u\x85"), id="unicode-break-header-value"
    ),
]


@pytest.mark.parametrize("rcpt", BAD_PEOPLE)
@pytest.mark.parametrize("template", SG_TEMPLATES.values(), ids=SG_TEMPLATES.keys())
def test_personalizer_refuses_what_the_slow_path_refuses(
    template: Template, rcpt: Recipient
) -> None:
    """The same ValidationError, message included: it becomes the recipient's ledger detail."""
    batch = MessageBatch(template, SENDER, [rcpt])
    fast = _result(lambda: json.dumps(_Personalizer(batch)(rcpt)).encode())
    slow = _result(lambda: json.dumps(_slow_personalization(batch, rcpt)).encode())

    assert fast == slow
    bad_url = rcpt.values["unsubscribe_url"] != sample_recipient(1).values["unsubscribe_url"]
    in_a_header = any(n == "unsubscribe_url" for _, part in template.headers for n, _ in part.slots)
    refused = not bad_url or in_a_header  # a bad URL only matters where it becomes a header
    assert isinstance(fast, tuple) is refused
    if refused:
        assert isinstance(fast, tuple) and fast[0] == ValidationError.__name__


_SG_VALUES = st.text(st.sampled_from([*"ab<>&\"' ,;é😀=%:"]), max_size=8)
_SG_PARTS = st.lists(
    st.one_of(
        st.sampled_from([placeholder(n, html=h) for n in FIELDS for h in (False, True)]),
        st.text(st.sampled_from([*"x %:<>"]), max_size=4),
    ),
    max_size=5,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    subject=_SG_PARTS,
    html=_SG_PARTS,
    text=_SG_PARTS,
    headers=st.dictionaries(
        st.sampled_from(["List-Unsubscribe", "X-A", "X-B"]), _SG_PARTS, max_size=3
    ),
    values=st.dictionaries(st.sampled_from([*FIELDS, "other"]), _SG_VALUES),
    email=_SG_VALUES,
)
def test_any_template_and_values_personalize_the_same(
    subject: str,
    html: str,
    text: str,
    headers: Mapping[str, str],
    values: Mapping[str, str],
    email: str,
) -> None:
    batch = MessageBatch(
        _sg_template(subject=subject, html=html, text=text, headers=dict(headers)), SENDER, []
    )
    rcpt = Recipient("L1", email, values)
    assert json.dumps(_Personalizer(batch)(rcpt)) == json.dumps(_slow_personalization(batch, rcpt))
