"""The embedded default: one ``.eml`` per message in a local folder.

Each file is written to a temporary name and renamed, so a crash never leaves a
half-written message that looks sent.  A write failure (disk full, folder not
writable) marks that recipient and the rest of the batch temporary and reports
a transport error, so nothing is recorded as sent that was not written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    Outcome,
    RecipientResult,
    message_id,
)
from newsletter.transports.mime import build_mime, to_bytes


def _filename(msg_id: str) -> str:
    return msg_id.strip("<>").replace("@", "_at_").replace("/", "_") + ".eml"


@dataclass
class OutboxMessenger:
    folder: Path
    name: str = "outbox"
    max_batch: int = 1000

    def send(self, batch: MessageBatch) -> BatchResult:
        results: list[RecipientResult] = []
        for index, rcpt in enumerate(batch.recipients):
            msg_id = message_id(rcpt.ref, batch.sender)
            filled = batch.template.fill({**rcpt.values, "email": rcpt.email})
            mime = build_mime(
                filled,
                sender=batch.sender,
                to=rcpt.email,
                to_name=rcpt.values.get("name") or None,
                msg_id=msg_id,
            )
            try:
                self._write(_filename(msg_id), to_bytes(mime))
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
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / name)

    def close(self) -> None:
        pass
