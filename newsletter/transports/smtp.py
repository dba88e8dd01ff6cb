"""SMTP with smtplib: a small pool of reused connections, one message per recipient.

A batch is worked by up to ``connections`` threads, each with its own
connection taken from the pool (opened on first use, kept open between
batches, closed by ``close()``).  Every message is built for its recipient
(``build_mime`` + ``to_bytes``: CRLF, quoted-printable, no header injection)
and sent with ``sendmail(from, [to], bytes)`` so the relay's answer at RCPT
and after DATA is that recipient's outcome.  ``from`` (MAIL FROM, the future
Return-Path) is ``envelope_sender(ref)`` when given: the recipient's signed
VERP bounce address (``bounces.verp``), so a bounce names its ledger row.

==============================================  ============================================
250 after DATA                                  ACCEPTED, provider_id = our Message-ID
4xx at MAIL/RCPT/DATA (incl. 421)               TEMPORARY, detail = the server's reply
5xx at RCPT/DATA                                PERMANENT (hard bounce), detail = the reply
connection lost before the data was all sent    retried once on a fresh connection
connection lost after the data was sent         UNKNOWN (maybe delivered: never auto-retry)
CR/LF/NUL in this recipient's header values     PERMANENT, nothing sent
cannot connect / TLS / greeting fails           TEMPORARY for the rest of the batch
login refused (5xx), MAIL FROM refused (5xx),   TEMPORARY for the rest + ``error``: these
STARTTLS/AUTH not offered, bad TLS certificate  do not fix themselves; pause and tell admin
==============================================  ============================================

Batch-wide header values (sender, subject, template headers) with CR/LF/NUL
are a caller's bug: ``send`` raises ``ValidationError`` before connecting.
"""

from __future__ import annotations

import functools
import logging
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal, get_args

from newsletter.errors import ConfigError, ValidationError
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    MessageSigner,
    Outcome,
    Recipient,
    RecipientResult,
    message_id,
)
from newsletter.transports.mime import build_mime, to_bytes
from newsletter.transports.wire import BatchWire

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "ssl"]
_BARE_EOL = re.compile(r"\r\n|\r|\n")


class _TrackedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that records whether the message data fully left.

    Why: a connection that drops *before* the final ``.`` was written cannot
    have delivered the message, so it is safe to retry; one that drops while
    we wait for the reply to the ``.`` may have delivered it.
    """

    data_sent = False

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        """smtplib's ``data`` with one flag set between sending and reading the reply."""
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        raw = _BARE_EOL.sub("\r\n", msg).encode("ascii") if isinstance(msg, str) else bytes(msg)
        # Dot-stuffing: a "." starting the data or any line gets another (RFC 5321 4.5.2).
        payload = (b"." + raw if raw.startswith(b".") else raw).replace(b"\n.", b"\n..")
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        self.send(payload + b".\r\n")
        self.data_sent = True
        return self.getreply()


class _TrackedSMTPSSL(_TrackedSMTP, smtplib.SMTP_SSL):
    """The same over implicit TLS (port 465)."""


class _Unavailable(Exception):
    """The server as a whole cannot take mail now: stop the batch."""

    def __init__(self, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error = error


class _Slot:
    """One worker's connection; forgets it when smtplib has closed it (421, drop)."""

    def __init__(self, conn: _TrackedSMTP | None) -> None:
        self._conn = conn

    @property
    def conn(self) -> _TrackedSMTP | None:
        if self._conn is not None and self._conn.sock is None:
            self._conn = None
        return self._conn

    def use(self, conn: _TrackedSMTP) -> _TrackedSMTP:
        self._conn = conn
        return conn

    def discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


class _Run:
    """One batch being worked by several threads: a shared cursor and the results."""

    def __init__(self, batch: MessageBatch, signer: MessageSigner | None = None) -> None:
        self.batch = batch
        # Wire bytes per recipient (learnt once per batch), DKIM-signed with a signer.
        self.wire = BatchWire(batch, _render, signer)
        self.results: list[RecipientResult | None] = [None] * len(batch.recipients)
        self.stopped: _Unavailable | None = None
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.stopped is not None or self._next >= len(self.results):
                return None
            self._next += 1
            return self._next - 1

    def stop(self, failure: _Unavailable) -> None:
        with self._lock:
            self.stopped = self.stopped or failure

    def result(self, relay: str) -> BatchResult:
        detail = self.stopped.detail if self.stopped else "not attempted"
        results = tuple(
            result or RecipientResult(rcpt.ref, Outcome.TEMPORARY, detail=detail)
            for rcpt, result in zip(self.batch.recipients, self.results, strict=True)
        )
        if self.stopped is None:
            return BatchResult(results, relay=relay)
        return BatchResult(results, error=self.stopped.error, down=detail, relay=relay)


class SMTPMessenger:
    """A ``Messenger`` for any SMTP relay (Postfix, a provider's submission port, ...)."""

    name = "smtp"
    max_batch = 1000

    def __init__(
        self,
        host: str,
        port: int,
        security: Security = "none",
        username: str | None = None,
        password: str | None = None,
        connections: int = 2,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        envelope_sender: Callable[[str], str] | None = None,
        signer: MessageSigner | None = None,
    ) -> None:
        if security not in get_args(Security):
            raise ConfigError(f"smtp_security must be none, starttls or ssl, not {security!r}")
        if connections < 1:
            raise ConfigError("smtp_connections must be at least 1")
        if (username is None) != (password is None):
            raise ConfigError("smtp_username and smtp_password must be set together")
        self.host, self.port, self.security = host, port, security
        self.username = username
        self.connections, self.timeout = connections, timeout
        self._password = password
        self._ssl_context = ssl_context
        # MAIL FROM per recipient (ref -> address: the VERP bounce address); None: the From.
        self._envelope_sender = envelope_sender
        self.signer = signer  # DKIM: applied to each message's final bytes
        self._idle: list[_TrackedSMTP] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SMTPMessenger({self.host}:{self.port}, security={self.security!r})"

    def send(self, batch: MessageBatch) -> BatchResult:
        """Send every message of the batch over up to ``connections`` parallel connections."""
        if len(batch.recipients) > self.max_batch:
            raise ValueError(f"batch of {len(batch.recipients)} exceeds max_batch {self.max_batch}")
        if not batch.recipients:
            return BatchResult(())
        _check_batch(batch)
        run = _Run(batch, self.signer)
        workers = min(self.connections, len(batch.recipients))
        futures = [self._pool().submit(self._work, run) for _ in range(workers)]
        for future in futures:
            future.result()  # re-raises programming errors from a worker
        result = run.result(f"{self.host}:{self.port}")
        log.info("smtp: %d messages -> %s", len(result.results), _summary(result))
        return result

    def check(self) -> str | None:
        """A health check: connect, greet, log in and QUIT; None if fine, else what failed."""
        try:
            conn = self._open()
        except _Unavailable as failure:
            return failure.detail
        _quit(conn)
        return None

    def close(self) -> None:
        """QUIT every pooled connection and stop the worker threads (a later send reopens)."""
        with self._lock:
            idle, self._idle = self._idle, []
            executor, self._executor = self._executor, None
        for conn in idle:
            _quit(conn)
        if executor is not None:
            executor.shutdown(wait=True)

    # workers ---------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.connections, thread_name_prefix="smtp")
            return self._executor

    def _work(self, run: _Run) -> None:
        """Take recipients from the shared cursor until none are left or the server is gone."""
        slot = _Slot(self._checkout())
        try:
            for index in _cursor(run):
                rcpt = run.batch.recipients[index]
                try:
                    run.results[index] = self._send_one(slot, run, rcpt)
                except _Unavailable as failure:
                    run.results[index] = RecipientResult(
                        rcpt.ref, Outcome.TEMPORARY, detail=failure.detail
                    )
                    run.stop(failure)
        finally:
            self._checkin(slot.conn)

    def _send_one(self, slot: _Slot, run: _Run, rcpt: Recipient) -> RecipientResult:
        batch = run.batch
        msg_id = message_id(rcpt.ref, batch.sender)
        if not rcpt.email.isascii():
            detail = "not sent: internationalised addresses (SMTPUTF8) are not supported"
            return RecipientResult(rcpt.ref, Outcome.PERMANENT, detail=detail)
        try:
            data = run.wire.render(rcpt, msg_id)
        except ValidationError as exc:
            return RecipientResult(rcpt.ref, Outcome.PERMANENT, detail=f"not sent: {exc}")
        envelope = self._envelope_sender
        mail_from = envelope(rcpt.ref) if envelope is not None else batch.sender.email
        lost = ""
        for _attempt in range(2):
            conn = slot.conn or slot.use(self._open())
            try:
                return self._transmit(conn, mail_from, rcpt, data, msg_id)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                slot.discard()
                lost = self._redact(str(exc) or type(exc).__name__)
                if conn.data_sent:
                    detail = f"connection lost after the message was sent ({lost}); maybe delivered"
                    return RecipientResult(rcpt.ref, Outcome.UNKNOWN, msg_id, detail)
        return RecipientResult(
            rcpt.ref, Outcome.TEMPORARY, msg_id, f"connection lost twice: {lost}"
        )

    def _transmit(
        self, conn: _TrackedSMTP, sender: str, rcpt: Recipient, data: bytes, msg_id: str
    ) -> RecipientResult:
        """One SMTP transaction; refusals become results, lost connections propagate."""
        conn.data_sent = False
        try:
            conn.sendmail(sender, [rcpt.email], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return _refusal(rcpt, msg_id, code, reply)
        except smtplib.SMTPSenderRefused as exc:
            raise self._sender_refused(exc) from exc
        except smtplib.SMTPResponseException as exc:  # SMTPDataError, SMTPHeloError
            return _refusal(rcpt, msg_id, exc.smtp_code, exc.smtp_error)
        return RecipientResult(rcpt.ref, Outcome.ACCEPTED, msg_id, "250 accepted")

    def _sender_refused(self, exc: smtplib.SMTPSenderRefused) -> _Unavailable:
        """MAIL FROM refused: the same for every message, so stop the batch."""
        detail = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if 500 <= exc.smtp_code < 600:
            error = f"SMTP server {self.host} refused the sender {exc.sender!r}: {detail}"
            return _Unavailable(self._redact(detail), self._redact(error))
        return _Unavailable(self._redact(detail))

    # connections -------------------------------------------------------------

    def _checkout(self) -> _TrackedSMTP | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _checkin(self, conn: _TrackedSMTP | None) -> None:
        if conn is None or conn.sock is None:
            return
        with self._lock:
            if len(self._idle) < self.connections:
                self._idle.append(conn)
                return
        _quit(conn)

    def _open(self) -> _TrackedSMTP:
        """A ready connection, or ``_Unavailable`` saying whether an admin must act."""
        where = f"SMTP server {self.host}:{self.port}"
        try:
            return self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            detail = f"{where} refused the login for {self.username!r}: {_reply(exc)}"
            raise self._unavailable(detail, admin=exc.smtp_code >= 500) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise self._unavailable(f"{where} closed the connection: {exc}") from exc
        except smtplib.SMTPResponseException as exc:  # greeting, EHLO or STARTTLS refused
            raise self._unavailable(f"{where} answered {_reply(exc)}") from exc
        except smtplib.SMTPException as exc:  # STARTTLS or AUTH not offered, no usable mechanism
            raise self._unavailable(f"{where}: {exc}", admin=True) from exc
        except ssl.SSLCertVerificationError as exc:
            raise self._unavailable(
                f"{where} has an untrusted certificate: {exc}", admin=True
            ) from exc
        except OSError as exc:
            raise self._unavailable(
                f"cannot connect to {where}: {exc or type(exc).__name__}"
            ) from exc

    def _connect(self) -> _TrackedSMTP:
        conn: _TrackedSMTP
        if self.security == "ssl":
            conn = _TrackedSMTPSSL(
                self.host,
                self.port,
                local_hostname=_local_hostname(),
                timeout=self.timeout,
                context=self._context(),
            )
        else:
            conn = _TrackedSMTP(
                self.host, self.port, local_hostname=_local_hostname(), timeout=self.timeout
            )
        try:
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self._context())
                conn.ehlo()
            if self.username is not None:
                conn.login(self.username, self._password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _unavailable(self, detail: str, *, admin: bool = False) -> _Unavailable:
        detail = self._redact(detail)
        log.warning("smtp: %s", detail)
        return _Unavailable(detail, detail if admin else None)

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "[redacted]") if self._password else text


def _cursor(run: _Run) -> Iterator[int]:
    while (index := run.take()) is not None:
        yield index


def _render(batch: MessageBatch, rcpt: Recipient, msg_id: str) -> bytes:
    """The wire bytes for one recipient; ValidationError if a header value is unsafe."""
    values = {**rcpt.values, "email": rcpt.email}
    filled = batch.template.fill(values)
    to_name = _check_header("name", values.get("name") or "") or None
    _check_header("subject", filled.subject)
    for name, value in filled.headers.items():
        _check_header(name, value)
    mime = build_mime(filled, sender=batch.sender, to=rcpt.email, to_name=to_name, msg_id=msg_id)
    return to_bytes(mime)


def _refusal(rcpt: Recipient, msg_id: str, code: int, reply: bytes | str) -> RecipientResult:
    """4xx: try again later; 5xx: this address will never take it (hard bounce)."""
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TEMPORARY
    return RecipientResult(rcpt.ref, outcome, msg_id, f"{code} {_text(reply)}")


def _check_batch(batch: MessageBatch) -> None:
    """Header values shared by the whole batch: a bad one is the caller's bug, raise."""
    _check_header("sender address", batch.sender.email)
    if not batch.sender.email.isascii():
        raise ValidationError("the sender address must be ASCII: SMTPUTF8 is not supported")
    _check_header("sender name", batch.sender.name)
    if batch.sender.reply_to:
        _check_header("reply-to address", batch.sender.reply_to)
    _check_header("subject", batch.template.source.subject)
    for name, value in batch.template.source.headers.items():
        _check_header("header name", name)
        _check_header(name, value)


# str.splitlines() breaks and NUL: the email package refuses every one of them in a
# header (with a bare ValueError), message.check_header_value only CR, LF and NUL.
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _check_header(name: str, value: str) -> str:
    """``check_header_value`` plus the Unicode line breaks: no header injection, no crash."""
    if not _LINE_BREAKS.isdisjoint(value):
        raise ValidationError(f"{name} contains a line break or NUL character")
    return value


@functools.cache
def _local_hostname() -> str:
    """What we say in EHLO; computed once because ``socket.getfqdn()`` can block on DNS."""
    fqdn = socket.getfqdn()
    return fqdn if "." in fqdn else "localhost.localdomain"


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def _summary(result: BatchResult) -> str:
    counts = {o.value: len(result.by_outcome(o)) for o in Outcome if result.by_outcome(o)}
    return ", ".join(f"{n} {o}" for o, n in counts.items()) + (
        f"; error: {result.error}" if result.error else ""
    )
