"""An append-only local spool: a click answered with 302 is on disk before the answer leaves.

The redirect must not wait for the database (it may be down, and a click is
worth far less than a reader's patience), yet a click it answered must never
be lost.  So each hit is one ``write()`` of one JSON line to a file opened
``O_APPEND``; once ``write`` returns, the bytes are the kernel's and survive
the process being killed (a power cut can still lose the last second: the
drain ``fsync``s nothing it has not already stored).  A drainer moves sealed
files to the database in batches and deletes a file only after its records
are committed; records carry unique ids and are inserted idempotently, so a
crash between commit and delete counts nothing twice.

Files are ``{host}-{pid}-{start}-{n}.jsonl``.  The writing process holds a shared
``flock`` on its current file; a drainer takes an exclusive non-blocking one,
so it only ever drains files no writer has open (sealed by ``rotate``, or
left by a process that died): any number of web processes share a folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"
MAX_LINE = 3000  # a record is a few hundred bytes; a longer line is not ours


@dataclass
class DrainReport:
    files: int = 0
    records: int = 0
    unreadable: int = 0  # lines that are not a record (a torn last line after a power cut)


class Spool:
    """The writing side, one per process: ``append`` is thread-safe and never touches the DB."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # The start time too: a later process that gets the same pid must not reuse a name.
        self._prefix = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}-"
        self._n = 0
        self._fd = -1
        self._written = 0
        self._open_next()

    def _open_next(self) -> None:
        """A new file, locked before it gets the name drainers look for (no race)."""
        self._n += 1
        path = self.folder / f"{self._prefix}{self._n}{SUFFIX}"
        hidden = path.with_name(f".{path.name}.new")
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)  # "in use": drainers leave it alone
        os.rename(hidden, path)
        self._fd, self._written = fd, 0

    def append(self, record: dict[str, Any]) -> None:
        """One line, one ``write``: on disk (in the kernel's hands) when this returns."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._written += len(line)

    def rotate(self) -> bool:
        """Seal the current file (if anything was written) so a drainer can take it."""
        with self._lock:
            if self._written == 0:
                return False
            old = self._fd
            self._open_next()
        os.close(old)  # releases its shared lock
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                empty = self._written == 0
                path = self.folder / f"{self._prefix}{self._n}{SUFFIX}"
                os.close(self._fd)
                self._fd = -1
                if empty:
                    path.unlink(missing_ok=True)


def _records(data: bytes, report: DrainReport) -> list[dict[str, Any]]:
    records = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line) if len(line) <= MAX_LINE else None
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            report.unreadable += 1
    return records


def drain(
    folder: Path, store: Callable[[list[dict[str, Any]]], None], *, limit: int = 50_000
) -> DrainReport:
    """Store every sealed file's records (``store`` commits them), then delete the files.

    ``store`` raising (the database is down) leaves the file for the next try.
    Up to ``limit`` records are stored per call, so one drain never holds a
    transaction for long.
    """
    report = DrainReport()
    for path in sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime):
        if report.records >= limit:
            break
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another drainer finished it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a writer has it open, or another drainer is on it
            if not path.exists():
                continue
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read()
            records = _records(data, report)
            if records:
                store(records)
            path.unlink()
            report.files += 1
            report.records += len(records)
        finally:
            os.close(fd)
    return report
