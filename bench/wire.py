"""SMTP and outbox wire bytes per message, tracked and untracked: ``BatchWire.render`` alone.

    python -m bench.wire [--messages 2000] [--repeats 5]

Issue 42 for ``--messages`` recipients as the preparer makes the batch (no
database), rendered to the bytes the SMTP and outbox transports send, with
first-party tracking off (4 per-recipient values: name, web, preferences and
unsubscribe links) and on (12 tracked links and the open pixel besides).  CPU
time per message, median of the repeats.  The figures go to BENCHMARKS.md
("Per-recipient cost of tracked links").
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.deliverability import issue_batch


def per_message(tracking: bool, messages: int, repeats: int) -> tuple[float, int]:
    """(µs of CPU per message, bytes of the last message)."""
    from newsletter.transports import smtp
    from newsletter.transports.base import message_id
    from newsletter.transports.wire import BatchWire

    batch = issue_batch(messages, tracking=tracking)
    ids = [message_id(r.ref, batch.sender) for r in batch.recipients]
    samples, data = [], b""
    for _ in range(repeats):
        wire = BatchWire(batch, smtp._render)
        start = time.process_time()
        for rcpt, msg_id in zip(batch.recipients, ids, strict=True):
            data = wire.render(rcpt, msg_id)
        samples.append((time.process_time() - start) / messages * 1e6)
    return statistics.median(samples), len(data)


def sample(*, tracking: bool) -> bytes:
    """One recipient's wire bytes, as ``per_message`` renders them."""
    from newsletter.transports import smtp
    from newsletter.transports.base import message_id
    from newsletter.transports.wire import BatchWire

    batch = issue_batch(1, tracking=tracking)
    rcpt = batch.recipients[0]
    return bytes(BatchWire(batch, smtp._render).render(rcpt, message_id(rcpt.ref, batch.sender)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for tracking in (False, True):
        us, size = per_message(tracking, args.messages, args.repeats)
        label = "tracked" if tracking else "untracked"
        print(f"{label:9}  {us:6.1f} µs per message  ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
