"""The embedded default: one ``.eml`` per message in a local folder.

Each file is written to a temporary name and renamed, so a crash never leaves a
half-written message that looks sent.  A write failure (disk full, folder not
writable) marks that recipient and the rest of the batch temporary and reports
a transport error, so nothing is recorded as sent that was not written; a
half-written temporary file is removed.  A recipient whose name or header
values would inject a header is refused alone (permanent), like SMTP and
SendGrid do.  With an ``envelope_sender`` each file starts with the
``Return-Path`` that the final MTA would have written (the VERP bounce
address), so an outbox shows exactly where that message's bounces would go.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import ValidationError
from newsletter.message import check_header_value
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    MessageSigner,
    Outcome,
    Recipient,
    RecipientResult,
    Sender,
    message_id,
)
from newsletter.transports.mime import build_mime, to_bytes
from newsletter.transports.wire import BatchWire


def _check_sender(sender: Sender) -> None:
    check_header_value("sender address", sender.email)
    check_header_value("sender name", sender.name)
    if sender.reply_to:
        check_header_value("reply-to address", sender.reply_to)


def _render(batch: MessageBatch, rcpt: Recipient, msg_id: str) -> bytes:
    """One recipient's ``.eml`` bytes; ValidationError if a header value is unsafe."""
    filled = batch.template.fill({**rcpt.values, "email": rcpt.email})
    mime = build_mime(
        filled,
        sender=batch.sender,
        to=rcpt.email,
        to_name=rcpt.values.get("name") or None,
        msg_id=msg_id,
    )
    return to_bytes(mime)


def _filename(msg_id: str) -> str:
    return msg_id.strip("<>").replace("@", "_at_").replace("/", "_") + ".eml"


@dataclass
class OutboxMessenger:
    folder: Path
    name: str = "outbox"
    max_batch: int = 1000
    # ref -> the VERP bounce address, written as the Return-Path an MTA would add
    envelope_sender: Callable[[str], str] | None = None
    signer: MessageSigner | None = None  # DKIM: applied to each message's final bytes

    def send(self, batch: MessageBatch) -> BatchResult:
        _check_sender(batch.sender)  # batch-wide: raise before anything is written
        wire = BatchWire(batch, _render, self.signer)  # _render's bytes, learnt once per batch
        results: list[RecipientResult] = []
        for index, rcpt in enumerate(batch.recipients):
            msg_id = message_id(rcpt.ref, batch.sender)
            try:
                data = wire.render(rcpt, msg_id)
            except ValidationError as exc:  # CR/LF in this recipient's name or header values
                detail = f"not sent: {exc}"
                results.append(RecipientResult(rcpt.ref, Outcome.PERMANENT, detail=detail))
                continue
            if self.envelope_sender is not None:
                data = b"Return-Path: <%s>\r\n%s" % (self.envelope_sender(rcpt.ref).encode(), data)
            try:
                self._write(_filename(msg_id), data)
            except OSError as exc:
                detail = f"outbox {self.folder} not writable: {exc.strerror or exc}"
                rest = batch.recipients[index:]
                results.extend(
                    RecipientResult(r.ref, Outcome.TEMPORARY, detail=detail) for r in rest
                )
                return BatchResult(tuple(results), error=detail)
            results.append(RecipientResult(rcpt.ref, Outcome.ACCEPTED, msg_id, "written"))
        return BatchResult(tuple(results))

    def _write(self, name: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not also keep half a message
            raise

    def close(self) -> None:
        pass
