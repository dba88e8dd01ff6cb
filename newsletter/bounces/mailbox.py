"""``newsletter bounces poll``: read bounces from an IMAP (imap-tools) or POP3 (poplib) mailbox.

For a sender who cannot run ``bounces serve`` (no MX of their own): point the
bounce domain's mail at any mailbox and let the scheduler poll it.

Each message is stored (``BounceProcessor.process`` commits) before it is
deleted (or, on IMAP, moved to ``bounce_mailbox_done_folder``).  A crash in
between leaves it in the mailbox; the next poll sees the same bytes, finds the
digest already stored, and only deletes it: nothing is counted twice.
POP3 deletions take effect at QUIT, so a dropped connection undoes them and
the same rule applies.  A message above ``bounce_max_message_bytes`` is never
downloaded whole: its headers are kept as an ``unparsed`` row and the message
stays in the mailbox for a person.
"""

from __future__ import annotations

import imaplib
import logging
import poplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage
from imap_tools.errors import ImapToolsError, MailboxLoginError

from newsletter.bounces.apply import BounceProcessor
from newsletter.config import Settings
from newsletter.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

DEFAULT_PORTS = {
    ("imap", True): 993,
    ("imap", False): 143,
    ("pop3", True): 995,
    ("pop3", False): 110,
}
_DELETE_EVERY = 50  # IMAP: expunge in groups, not once per message


@dataclass
class PollReport:
    seen: int = 0
    stored: int = 0
    duplicates: int = 0
    oversized: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, *, duplicate: bool) -> None:
        self.seen += 1
        if duplicate:
            self.duplicates += 1
            return
        self.stored += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


@dataclass(frozen=True)
class MailboxConfig:
    protocol: str
    host: str
    port: int
    security: str
    user: str
    password: str
    folder: str
    done_folder: str | None
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> MailboxConfig:
        if not settings.bounce_mailbox_host:
            raise ConfigError("no bounce mailbox: set bounce_mailbox_host (and user, password)")
        if settings.bounce_mailbox_user is None or settings.bounce_mailbox_password is None:
            raise ConfigError("bounce_mailbox_user and bounce_mailbox_password must be set")
        protocol, security = settings.bounce_mailbox_protocol, settings.bounce_mailbox_security
        port = settings.bounce_mailbox_port or DEFAULT_PORTS[(protocol, security == "ssl")]
        return cls(
            protocol, settings.bounce_mailbox_host, port, security, settings.bounce_mailbox_user,
            settings.bounce_mailbox_password.get_secret_value(), settings.bounce_mailbox_folder,
            settings.bounce_mailbox_done_folder, settings.bounce_max_message_bytes,
        )  # fmt: skip

    @property
    def where(self) -> str:
        return f"{self.protocol.upper()} {self.user}@{self.host}:{self.port}"


def poll_mailbox(
    processor: BounceProcessor, settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> PollReport:
    """Process every message in the configured mailbox once; see the module docstring."""
    config = MailboxConfig.from_settings(settings)
    context = ssl_context or ssl.create_default_context()
    try:
        if config.protocol == "pop3":
            return _poll_pop3(processor, config, context)
        return _poll_imap(processor, config, context)
    except MailboxLoginError as exc:
        raise ConfigError(f"{config.where} refused the login: {_said(exc)}") from None
    except (ImapToolsError, imaplib.IMAP4.error, poplib.error_proto) as exc:
        raise TransportError(f"{config.where}: {_said(exc)}") from None
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot reach {config.where}: {exc or type(exc).__name__}") from None


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


# --- IMAP ---------------------------------------------------------------------------------


class _RawMessage(MailMessage):
    """imap-tools' message, keeping the exact bytes the server sent (the digest is over them)."""

    def __init__(self, fetch_data: list[Any]) -> None:
        super().__init__(fetch_data)
        self.raw: bytes = self._get_message_data_parts(fetch_data)[0]


def _raw(message: MailMessage) -> _RawMessage:
    assert isinstance(message, _RawMessage)  # _imap sets the class
    return message


def _imap(config: MailboxConfig, context: ssl.SSLContext) -> BaseMailBox:
    if config.security == "ssl":
        box: BaseMailBox = MailBox(config.host, config.port, timeout=30, ssl_context=context)
    elif config.security == "starttls":
        box = MailBoxStartTls(config.host, config.port, timeout=30, ssl_context=context)
    else:
        box = MailBoxUnencrypted(config.host, config.port, timeout=30)
    box.email_message_class = _RawMessage
    return box


def _poll_imap(
    processor: BounceProcessor, config: MailboxConfig, context: ssl.SSLContext
) -> PollReport:
    report = PollReport()
    with _imap(config, context).login(config.user, config.password, config.folder) as box:
        heads = [_raw(m) for m in box.fetch(mark_seen=False, headers_only=True, bulk=200)]
        done: list[str] = []
        for head in heads:
            uid = head.uid
            if uid is None:
                continue
            if head.size_rfc822 > config.max_bytes:
                new = processor.oversized(head.raw, head.size_rfc822, source="imap")
                report.oversized += int(new)
                continue
            for message in box.fetch(uid_list=[uid], mark_seen=False):
                outcome = processor.process(_raw(message).raw, source="imap")
                report.add(outcome.kind.value, duplicate=outcome.duplicate)
                done.append(uid)  # stored (or already stored): safe to remove now
            if len(done) >= _DELETE_EVERY:
                _finish_imap(box, config, done)
        _finish_imap(box, config, done)
    return report


def _finish_imap(box: BaseMailBox, config: MailboxConfig, uids: list[str]) -> None:
    if not uids:
        return
    if config.done_folder:
        box.move(uids, config.done_folder)
    else:
        box.delete(uids)
    uids.clear()


# --- POP3 ---------------------------------------------------------------------------------


@contextmanager
def _pop3(config: MailboxConfig, context: ssl.SSLContext) -> Iterator[poplib.POP3]:
    conn: poplib.POP3
    if config.security == "ssl":
        conn = poplib.POP3_SSL(config.host, config.port, timeout=30, context=context)
    else:
        conn = poplib.POP3(config.host, config.port, timeout=30)
    try:
        if config.security == "starttls":
            conn.stls(context=context)
        try:
            conn.user(config.user)
            conn.pass_(config.password)
        except poplib.error_proto as exc:
            raise ConfigError(f"{config.where} refused the login: {_said(exc)}") from None
        yield conn
        conn.quit()  # deletions take effect here, and only here
    finally:
        conn.close()


def _poll_pop3(
    processor: BounceProcessor, config: MailboxConfig, context: ssl.SSLContext
) -> PollReport:
    report = PollReport()
    with _pop3(config, context) as conn:
        _resp, listing, _octets = conn.list()
        for line in listing:
            number, size = (int(x) for x in line.split()[:2])
            if size > config.max_bytes:
                head = b"\r\n".join(conn.top(number, 0)[1])
                report.oversized += int(processor.oversized(head, size, source="pop3"))
                continue
            raw = b"\r\n".join(conn.retr(number)[1]) + b"\r\n"
            outcome = processor.process(raw, source="pop3")
            report.add(outcome.kind.value, duplicate=outcome.duplicate)
            conn.dele(number)
    return report
