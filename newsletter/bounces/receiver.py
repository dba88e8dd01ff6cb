"""``newsletter bounces serve``: an inbound SMTP server (aiosmtpd) for the bounce domain's MX.

It is not a mail server: it accepts mail only for the bounce domain's own
addresses (``bounces@``, ``bounces+{token}@``, and ``bounce_extra_local_parts``
such as ``fbl@``, ``abuse@`` and ``postmaster@``) and refuses everything else
at RCPT, so it can never relay:

===========================================  ==========================================
RCPT for an address of the bounce domain     250 (a forged token too: it is kept)
RCPT for another local part of that domain   550 5.1.1 no such user
RCPT for any other domain                    550 5.7.1 relaying denied
more than ``MAX_RECIPIENTS`` RCPTs           452 4.5.3 too many recipients
``MAIL FROM ... SIZE=`` above the limit      552 (aiosmtpd, from the advertised SIZE)
DATA above ``bounce_max_message_bytes``      552, after reading and discarding the rest
DATA stored                                  250 2.0.0, only once the row is committed
database down, or any failure storing it     451 4.3.0: the sender keeps it and retries
===========================================  ==========================================

aiosmtpd reads DATA line by line and, past the size limit, discards what it
read and keeps draining, so a 50 MB message costs at most the limit in memory.
The parse and the database work run in a thread pool, off the event loop, so
a slow database never stalls other connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.bounces.apply import BounceProcessor

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100


class BounceHandler:
    """aiosmtpd handler: accept our addresses, store each message before answering 250."""

    def __init__(self, processor: BounceProcessor) -> None:
        self.processor = processor
        self.verp = processor.verp

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() == "postmaster":  # RFC 5321 4.5.1: always accepted, no domain
            address = f"postmaster@{self.verp.domain}"
        if not self.verp.match(address).ours:
            domain = address.rpartition("@")[2].lower()
            if domain == self.verp.domain:
                return "550 5.1.1 no such user here"
            return "550 5.7.1 relaying denied"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        rcpts = list(envelope.rcpt_tos)
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(None, self._process, raw, rcpts)
        except Exception:
            log.exception("bounces: could not store a %d-byte message; asked to retry", len(raw))
            return "451 4.3.0 cannot store the message now; try again later"
        if outcome.duplicate:
            return "250 2.0.0 OK: already stored"
        return f"250 2.0.0 OK: stored as {outcome.kind.value}"

    def _process(self, raw: bytes, rcpts: list[str]) -> Any:
        return self.processor.process(raw, source="smtp", envelope_to=rcpts)


class BounceServer(Controller):
    """The receiver on a thread (``start``/``stop``); port 0 picks a free port (tests)."""

    def __init__(self, processor: BounceProcessor, *, host: str, port: int) -> None:
        settings = processor.settings
        super().__init__(
            BounceHandler(processor),
            hostname=host,
            port=port,
            server_hostname=settings.bounce_domain_name,
            ident="newsletter bounces",
            data_size_limit=settings.bounce_max_message_bytes,
            decode_data=False,
        )

    def _trigger_server(self) -> None:
        """Learn the real port (port 0 binds any) before aiosmtpd's start-up probe connects."""
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]
