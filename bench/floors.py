"""Floors: the same provider work with no database, to compare each path against.

* SendGrid: the same recipients (``dataset``'s synthetic audience), the same
  segments and batches of 1000, the same Issue 42 templates, values and
  signed links (``IssuePreparer``), the same messenger and payloads, posted to
  the same local server.  ``build_only`` stops before the POST.
* SMTP: messages built once beforehand (real Issue 42 MIME bytes for 1000
  recipients, reused in turn) pushed with ``smtplib`` into the same sink from
  as many processes as the campaign has workers, each over as many
  connections as a worker holds.
* Outbox: the same pre-built bytes written through the outbox's own writer
  (temporary file, fsync, rename).

Each runs in a fresh process, like the campaign workers it is compared with.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import smtplib
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dataset import Target, _rows

BATCH = 1000


@dataclass
class FloorRun:
    messages: int
    seconds: float
    cpu_seconds: float
    calls: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spawn(target: Any, *args: Any) -> FloorRun:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, results, *args), daemon=True)
    proc.start()
    out = results.get(timeout=3600)
    proc.join(timeout=30)
    if "error" in out:
        raise RuntimeError(out["error"])
    return FloorRun(**out)


def _child(target: Any, results: Any, *args: Any) -> None:
    try:
        results.put(target(*args))
    except BaseException as exc:
        import traceback

        results.put({"error": f"{exc}\n{traceback.format_exc()}"})


def issue_content(target: Target) -> Any:
    """Issue 42 as the campaign renders it (read once from the benchmark database)."""
    from newsletter.db import connect
    from newsletter.issues.store import content_for_id
    from newsletter.sending.campaigns import get_issue_by_number

    db = connect(target.settings())
    try:
        with db.session() as session:
            return content_for_id(get_issue_by_number(42, session=session).id, session=session)
    finally:
        db.dispose()


def _batches(content: Any, count: int) -> list[Any]:
    """The claimed batches the freeze would make for ``count`` subscribers, without a database."""
    from newsletter.sending.prepare import issue_topics
    from newsletter.sending.segments import decode_segment, encode_segment
    from newsletter.sending.types import Addressee, ClaimedBatch

    universe = issue_topics(content)
    segments: dict[str, list[Addressee]] = defaultdict(list)
    for sid, email, ehash, name, status, topics in _rows(count):
        if status == "confirmed":
            mask = encode_segment(topics, universe)
            segments[mask].append(Addressee(sid, sid, email, name, ehash))
    out: list[ClaimedBatch] = []
    for mask in sorted(segments):
        people = segments[mask]
        for start in range(0, len(people), BATCH):
            out.append(
                ClaimedBatch(
                    id=len(out) + 1,
                    campaign_id=1,
                    issue_id=1,
                    segment=decode_segment(mask, universe),
                    attempts=1,
                    recipients=tuple(people[start : start + BATCH]),
                )
            )
    return out


def _sendgrid(
    target: Target, content: Any, count: int, host: str, key: str, send: bool
) -> dict[str, Any]:
    import json

    from newsletter.sending.prepare import offline_preparer
    from newsletter.transports.sendgrid import SendGridMessenger, _message

    settings = target.settings()
    preparer = offline_preparer(settings, content)
    messenger = SendGridMessenger(key, host=host)
    batches = _batches(content, count)
    cpu0 = _cpu()
    start = time.monotonic()
    sent = calls = 0
    for batch in batches:
        message_batch = preparer(batch)
        if send:
            result = messenger.send(message_batch)
            sent += sum(1 for r in result.results if r.outcome == "accepted")
            calls += 1
        else:
            entries, _refused = messenger._prepare(message_batch)
            payload = {
                **_message(message_batch, False),
                "personalizations": [e.personalization for e in entries],
            }
            json.dumps(payload).encode()
            sent += len(entries)
    return {
        "messages": sent,
        "seconds": time.monotonic() - start,
        "cpu_seconds": _cpu() - cpu0,
        "calls": calls,
    }


def sendgrid(
    target: Target, content: Any, count: int, host: str, key: str, *, send: bool = True
) -> FloorRun:
    """Prepare (and post, unless ``send`` is false) ``count`` recipients with no database."""
    return _spawn(_sendgrid, target, content, count, host, key, send)


def _prebuilt(target: Target, content: Any, count: int) -> list[tuple[str, bytes]]:
    """(address, wire bytes) of real Issue 42 messages for up to 1000 recipients."""
    from newsletter.sending.prepare import offline_preparer
    from newsletter.transports.base import message_id
    from newsletter.transports.smtp import _render

    settings = target.settings()
    preparer = offline_preparer(settings, content)
    out: list[tuple[str, bytes]] = []
    for batch in _batches(content, min(count, BATCH)):
        message_batch = preparer(batch)
        for rcpt in message_batch.recipients:
            data = _render(message_batch, rcpt, message_id(rcpt.ref, message_batch.sender))
            out.append((rcpt.email, data))
    return out


def _smtp(
    target: Target,
    content: Any,
    count: int,
    host: str,
    port: int,
    connections: int,
    start_line: Any = None,
) -> dict[str, Any]:
    messages = _prebuilt(target, content, count)
    sender = target.settings().from_email
    lock = threading.Lock()
    cursor = [0]

    def work() -> None:
        conn = smtplib.SMTP(host, port, timeout=30)
        conn.ehlo()
        try:
            while True:
                with lock:
                    n = cursor[0]
                    if n >= count:
                        return
                    cursor[0] += 1
                to, data = messages[n % len(messages)]
                conn.sendmail(sender, [to], data)
        finally:
            conn.quit()

    if start_line is not None:
        start_line.wait()  # every process has built its messages
    cpu0 = _cpu()
    start = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = time.monotonic()
    return {
        "messages": count,
        "seconds": end - start,
        "cpu_seconds": _cpu() - cpu0,
        "calls": count,
        "span": (start, end),
    }


def smtp(
    target: Target,
    content: Any,
    count: int,
    host: str,
    port: int,
    *,
    processes: int = 1,
    connections: int = 2,
) -> FloorRun:
    """Push ``count`` pre-built messages into the sink from ``processes`` processes.

    Each process pushes its share over ``connections`` connections (threads),
    laid out like the campaign it is compared with: one process per worker,
    each with the SMTP messenger's two connections.  The time is from the
    first process's start to the last one's end (``CLOCK_MONOTONIC`` is
    shared by processes).
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    start_line = ctx.Barrier(processes)
    shares = [count // processes + (i < count % processes) for i in range(processes)]
    procs = [
        ctx.Process(
            target=_child,
            args=(_smtp, results, target, content, share, host, port, connections, start_line),
            daemon=True,
        )
        for share in shares
    ]
    for proc in procs:
        proc.start()
    outs = [results.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    errors = [out["error"] for out in outs if "error" in out]
    if errors:
        raise RuntimeError("\n".join(errors))
    return FloorRun(
        messages=sum(out["messages"] for out in outs),
        seconds=max(out["span"][1] for out in outs) - min(out["span"][0] for out in outs),
        cpu_seconds=sum(out["cpu_seconds"] for out in outs),
        calls=sum(out["calls"] for out in outs),
    )


def _outbox(target: Target, content: Any, count: int) -> dict[str, Any]:
    from newsletter.transports.outbox import OutboxMessenger

    messages = _prebuilt(target, content, count)
    with tempfile.TemporaryDirectory(dir=target.folder) as folder:
        writer = OutboxMessenger(Path(folder))
        cpu0 = _cpu()
        start = time.monotonic()
        for n in range(count):
            writer._write(f"floor-{n}.eml", messages[n % len(messages)][1])
        seconds = time.monotonic() - start
    return {"messages": count, "seconds": seconds, "cpu_seconds": _cpu() - cpu0, "calls": count}


def outbox(target: Target, content: Any, count: int) -> FloorRun:
    """Write ``count`` pre-built messages with the outbox's own writer (fsync + rename)."""
    return _spawn(_outbox, target, content, count)
