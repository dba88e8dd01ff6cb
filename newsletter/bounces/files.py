"""``newsletter bounces ingest``: bounces from ``.eml`` files, mbox files and Maildirs.

For an admin importing a mailbox export.  A path is a Maildir if it holds
``cur``, ``new`` and ``tmp``; another folder is searched for ``.eml`` files;
a file starting with an mbox ``From `` line is an mbox; any other file is one
message.  Every path is checked before anything is read, so a typo fails
fast with one line and nothing half-done.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import ImportFormatError, NotFoundError


@dataclass(frozen=True, slots=True)
class Source:
    """One path and how to read it."""

    path: Path
    form: str  # eml, mbox, maildir, folder

    def count(self) -> int:
        if self.form == "eml":
            return 1
        if self.form == "folder":
            return len(_eml_files(self.path))
        return len(_box(self))

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(label, raw bytes) for each message: the label is what ``--json`` calls ``file``."""
        if self.form == "eml":
            yield str(self.path), _read(self.path)
        elif self.form == "folder":
            for file in _eml_files(self.path):
                yield str(file), _read(file)
        else:
            box = _box(self)
            for key in box.iterkeys():
                yield f"{self.path}#{key}", box.get_bytes(key)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None


def _eml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.eml") if p.is_file())


def _box(source: Source) -> mailbox.Mailbox[mailbox.Message]:
    if source.form == "maildir":
        return mailbox.Maildir(source.path, factory=None, create=False)
    return mailbox.mbox(source.path, factory=None, create=False)


def _form(path: Path) -> str:
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            return "maildir"
        return "folder"
    try:
        with path.open("rb") as fh:
            start = fh.read(5)
    except OSError as exc:
        raise ImportFormatError(f"cannot read: {exc.strerror or exc}", where=str(path)) from None
    return "mbox" if start == b"From " else "eml"


def sources(paths: Sequence[Path]) -> list[Source]:
    """Every path checked and classified, before any is read."""
    if not paths:
        raise ImportFormatError("give at least one .eml file, mbox or Maildir")
    found: list[Source] = []
    for path in paths:
        if not path.exists():
            raise NotFoundError("no such file or folder", where=str(path))
        found.append(Source(path, _form(path)))
    return found
