"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records mail and misbehaves on command.

Why real SMTP: the messenger's contract is about what a relay answers at RCPT
and at the end of DATA, and about connections that drop, so the tests talk to
an actual server over a socket.

Programmable behaviour (set the attributes before or between sends):

- ``rcpt_replies[address] = "451 4.3.0 try later"``: the reply to RCPT TO;
- ``data_replies[address] = "554 5.6.0 rejected"``: the reply after DATA;
- ``drop_at_rcpt[address] = n``: abort the connection at that RCPT, the next
  n times (the message never started: the client may safely retry);
- ``drop_after_data[address] = n``: take the whole message, then abort the
  connection before replying, the next n times (the client cannot know it
  was taken);
- ``greylist = {"slow.example"}``: greylisting, the first RCPT TO of each
  address at those domains answered 451, later ones accepted;
- ``max_messages_per_connection = n``: close each connection after its
  n-th message, like a relay that limits messages per session;
- ``SmtpSink(auth=("user", "secret"))``: offer AUTH PLAIN/LOGIN without TLS
  and refuse MAIL FROM until the client has logged in;
- ``SmtpSink(tls=server_context, implicit_tls=...)``: STARTTLS or SMTPS,
  with ``self_signed_tls()`` for a throwaway certificate.

    with SmtpSink() as sink:
        sink.rcpt_replies["bad@example.org"] = "550 5.1.1 no such user"
        messenger = SMTPMessenger(sink.host, sink.port, security="none")
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One accepted message exactly as it came off the wire (after dot-unstuffing)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int
    login: str | None = None

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class _SinkState:
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    drop_at_rcpt: Counter[str] = field(default_factory=Counter)
    drop_after_data: Counter[str] = field(default_factory=Counter)
    max_messages_per_connection: int | None = None
    greylist: set[str] = field(default_factory=set)  # domains
    greylisted: Counter[str] = field(default_factory=Counter)  # address -> 451s given


class SmtpSink(_SinkState):
    """Context manager around an aiosmtpd ``Controller`` bound to 127.0.0.1 on a free port."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        super().__init__()
        self.auth = auth
        self.messages: list[ReceivedMessage] = []
        self.connections_opened = 0
        self.auth_failures = 0
        self.quits = 0
        self._lock = threading.Lock()
        self._per_connection: dict[int, int] = {}
        kwargs: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": 0,
            "server_hostname": "sink.test",
        }
        if auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs["tls_context"] = tls
        self._controller = _Controller(self, _Handler(self), **kwargs)

    # lifecycle -------------------------------------------------------------

    def __enter__(self) -> Self:
        self._controller.start()
        with self._lock:  # the controller's own start-up probe is not a client
            self.connections_opened = 0
            self._per_connection.clear()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._controller.port)

    # inspection ------------------------------------------------------------

    def to(self, address: str) -> list[ReceivedMessage]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def connections_used(self) -> set[int]:
        return {m.connection for m in self.messages}

    # called from the server thread ----------------------------------------

    def next_connection(self) -> int:
        with self._lock:
            self.connections_opened += 1
            self._per_connection[self.connections_opened] = 0
            return self.connections_opened

    def record(self, message: ReceivedMessage) -> int:
        """Store a message; return how many this connection has delivered."""
        with self._lock:
            self.messages.append(message)
            self._per_connection[message.connection] = (
                self._per_connection.get(message.connection, 0) + 1
            )
            return self._per_connection[message.connection]

    def note_quit(self) -> None:
        with self._lock:
            self.quits += 1

    def take_once(self, armed: Counter[str], candidates: list[str] | tuple[str, ...]) -> bool:
        """True (and count one down) if one of ``candidates`` is still armed."""
        with self._lock:
            hit = next((a for a in candidates if armed[a] > 0), None)
            if hit is None:
                return False
            armed[hit] -= 1
            return True

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        if not ok:
            with self._lock:
                self.auth_failures += 1
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: let aiosmtpd send the 535 (the default means "already replied")
        return AuthResult(success=False, handled=False)


class _SinkSMTP(SMTP):
    connection_number: int = 0


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink = sink

    def factory(self) -> _SinkSMTP:
        """Called once per accepted connection: this is where connections are counted."""
        server = _SinkSMTP(self.handler, **self.SMTP_kwargs)
        server.connection_number = self.sink.next_connection()
        return server

    def _trigger_server(self) -> None:
        """Learn the real port (we bind port 0) before the start-up probe connects."""
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sink.note_quit()
        return "221 Bye"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        sink = self.sink
        if sink.take_once(sink.drop_at_rcpt, [address]):
            _abort(server)
            return "421 4.4.2 connection dropped"  # never reaches the client
        reply = sink.rcpt_replies.get(address)
        if reply is not None:
            return reply
        domain = address.rpartition("@")[2].lower()
        if domain in sink.greylist and not sink.greylisted[address]:
            sink.greylisted[address] += 1
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sink = self.sink
        rcpts = tuple(envelope.rcpt_tos)
        reply = next((sink.data_replies[a] for a in rcpts if a in sink.data_replies), None)
        if reply is not None:
            return reply
        login = (
            session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword)
            else None
        )
        number = cast(_SinkSMTP, server).connection_number
        data = bytes(envelope.original_content or b"")
        count = sink.record(ReceivedMessage(str(envelope.mail_from), rcpts, data, number, login))
        if sink.take_once(sink.drop_after_data, rcpts):
            _abort(server)
            return "451 4.4.2 connection dropped"  # never reaches the client
        limit = sink.max_messages_per_connection
        if limit is not None and count >= limit and server.transport is not None:
            server.loop.call_soon(server.transport.close)  # after the 250 below is written
        return f"250 2.0.0 OK queued as {number}.{count}"


def _abort(server: SMTP) -> None:
    """Cut the connection without a reply (unlike close(), abort() drops pending writes)."""
    if server.transport is not None:
        cast(Any, server.transport).abort()


def _san(hostname: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def self_signed_tls(hostname: str = "127.0.0.1") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway certificate: (server context, client context that trusts only it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([_san(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client
