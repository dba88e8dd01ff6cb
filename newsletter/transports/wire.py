"""One batch's SMTP wire bytes without running the email package for every message.

``to_bytes(build_mime(...))`` costs about 3 ms per Issue 42 message, almost
all of it in the email package (header objects, a ``str.translate`` with a
dict for quoted-printable, the generator).  Within a batch the messages differ
only in a few header values, the MIME boundary, and the filled text and HTML.
``BatchWire`` renders one recipient of the batch (the *probe*) the standard
way, keeps the parts of those bytes that are the same for every recipient,
and for each recipient writes the varying headers directly and encodes the
bodies with the stdlib's own quoted-printable algorithm (ported below, with
the character translation done by C-speed ``bytes.replace`` and a regex).

It proves itself: the probe is rendered both ways and must come out byte for
byte the same, else the batch goes the standard way.  A recipient whose name,
address or header values are not plain ASCII words (anything the email
package would quote, encode or fold) also goes the standard way.  What
differs between two renderings of the same message is what always differs:
the Date, the Message-ID and the random boundary (drawn the same way as
``email.generator``).
"""

from __future__ import annotations

import itertools
import random
import re
import sys
from collections.abc import Callable
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.utils import formatdate
from typing import Any

from newsletter.errors import ValidationError
from newsletter.message import escape
from newsletter.transports.base import MessageBatch, MessageSigner, Recipient

Render = Callable[[MessageBatch, Recipient, str], bytes]

_BOUNDARY = re.compile(rb'boundary="(={15}\d+==)"')
_DATE = re.compile(rb"^Date: ([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} -0000)$")
_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, single spaces
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9._-]+@[A-Za-z0-9.-]+>")
_LONGEST_HEADER = 900  # well under the policy's 998: nothing gets folded
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))  # as email.generator
_HEADERS = HeaderRegistry()
_PROBES = 3  # recipients tried as the probe (each costs one standard rendering)
_UNBROKEN = 998  # a line this long or shorter, not ending in a space or tab: no soft break


def new_boundary() -> str:
    """``email.generator.Generator._make_boundary``'s boundary (a QP body can never contain it)."""
    token = random.randrange(sys.maxsize)
    return ("=" * 15) + f"{token:0{_BOUNDARY_WIDTH}d}" + "=="


# --- quoted-printable exactly as email.quoprimime.body_encode ------------------------

_NOT_PRINTABLE = re.compile(rb"[^\t\n\r -~]")


def _escape(match: re.Match[bytes]) -> bytes:
    return b"=%02X" % match.group()[0]


def qp_body(text: str, maxlinelen: int = 998) -> str:
    """``contentmanager``'s quoted-printable payload for ``text`` (utf-8), "\\n" line ends.

    Equals ``quoprimime.body_encode(normal_body(lines).decode("latin-1"), maxlinelen)``
    with ``lines = text.encode("utf-8").splitlines()``: the translation table maps
    every byte outside printable ASCII, tab, CR and LF, and "=", to "=XX", which
    ``_translate`` does; the line breaking is the stdlib's loop (``_qp_lines``).
    """
    return _qp_lines(_translate(b"\n".join(text.encode("utf-8").splitlines()) + b"\n"), maxlinelen)


def _translate(data: bytes) -> str:
    """``quoprimime``'s body translation table, applied with C-speed replacements."""
    return _NOT_PRINTABLE.sub(_escape, data.replace(b"=", b"=3D")).decode("ascii")


def _qp_lines(body: str, maxlinelen: int = 998) -> str:
    """``quoprimime.body_encode`` after its translation step: soft line breaks."""
    encoded: list[str] = []
    for line in body.splitlines():
        _break(line, encoded.append, maxlinelen)
    if body[-1] in "\r\n":
        encoded.append("")
    return "\n".join(encoded)


def _break(line: str, append: Callable[[str], None], maxlinelen: int = 998) -> None:
    """One line of ``quoprimime.body_encode``'s loop: pieces of at most ``maxlinelen``."""
    soft_break = "=\n"
    maxlinelen1 = maxlinelen - 1
    start = 0
    laststart = len(line) - 1 - maxlinelen
    while start <= laststart:
        stop = start + maxlinelen1
        if line[stop - 2] == "=":
            append(line[start : stop - 1])
            start = stop - 2
        elif line[stop - 1] == "=":
            append(line[start:stop])
            start = stop - 1
        else:
            append(line[start:stop] + "=")
            start = stop
    if line and line[-1] in " \t":
        room = start - laststart
        quoted = f"={ord(line[-1]):02X}"
        if room >= 3:
            tail = quoted
        elif room == 2:
            tail = line[-1] + soft_break
        else:
            tail = soft_break + quoted
        append(line[start:-1] + tail)
    else:
        append(line[start:])


def _crlf(pieces: list[str]) -> str:
    """One line's pieces as wire text (a soft break before a quoted space holds an LF too)."""
    return "\n".join(pieces).replace("\n", "\r\n")


# --- the batch ------------------------------------------------------------------------


class _Body:
    """One body part (text or HTML) of a template, encoded once except where values go.

    Translation is byte by byte and soft line breaks are per line, so the lines
    of the template that hold no placeholder are encoded once per batch, and
    for each recipient only the lines with values are translated and broken.
    With no CR in the template or the values and no LF in the values, the
    lines are the template's lines, and the line-end normalisation of
    ``contentmanager`` only drops a final empty line.
    """

    def __init__(self, part: Any) -> None:
        self.usable = not any("\r" in chunk for chunk in part.chunks)
        # The template's lines: fixed text and slot numbers, translated.
        lines: list[list[str | int]] = [[]]
        for index, chunk in enumerate(part.chunks):
            first, *rest = _translate(chunk.encode("utf-8")).split("\n")
            lines[-1].append(first)
            lines.extend([segment] for segment in rest)
            if index < len(part.slots):
                lines[-1].append(index)
        self.slots: tuple[tuple[str, bool], ...] = part.slots
        self.lines: list[str | list[str | int]] = []  # encoded fixed lines, or pieces
        for line in lines:
            if any(isinstance(piece, int) for piece in line):
                self.lines.append(line)
            else:
                encoded: list[str] = []
                _break("".join(str(piece) for piece in line), encoded.append)
                self.lines.append(_crlf(encoded))
        self._plan()

    def _plan(self) -> None:
        """``runs``: the payload as fixed text (runs of whole lines, CRLFs included) and lines
        with values, so that a recipient costs a loop over the lines with values only.

        With tracked links in most of MJML's long lines a per-line loop over the
        whole body was half of a message's cost.  The last line is kept apart:
        ``contentmanager`` drops it when it comes out empty.
        """
        runs: list[str | list[str | int]] = []
        fixed: list[str] = []
        for line in self.lines[:-1]:
            if isinstance(line, str):
                fixed.append(line + "\r\n")
                continue
            if fixed:
                runs.append("".join(fixed))
                fixed = []
            runs.append([piece for piece in line if piece != ""])
        if fixed:
            runs.append("".join(fixed))
        self.runs = runs
        self.last_line = self.lines[-1]
        self.one_line = len(self.lines) == 1

    def encode(self, raw: dict[str, str], escaped: dict[str, str]) -> bytes | None:
        """The part's payload with CRLF line ends, or None if a value holds a line break."""
        values: list[str] = []
        for name, is_html in self.slots:
            value = escaped[name] if is_html else raw[name]
            if "\r" in value or "\n" in value:
                return None
            if value.isascii() and value.isprintable() and "=" not in value:
                values.append(value)  # what _translate leaves as it is (links, tokens, names)
            else:
                values.append(_translate(value.encode("utf-8")))
        out: list[str] = []
        for run in self.runs:
            if isinstance(run, str):
                out.append(run)
            else:
                out.append(_line(run, values))
                out.append("\r\n")
        last = self.last_line
        last = last if isinstance(last, str) else _line(last, values)
        if last or self.one_line:  # the text ended with a newline: no empty line after it
            out.append(last)
            out.append("\r\n")
        return "".join(out).encode("ascii")


def _line(pieces: list[str | int], values: list[str]) -> str:
    """One line with values, encoded: soft breaks only where ``_break`` would put them."""
    text = "".join([values[p] if isinstance(p, int) else p for p in pieces])
    if len(text) <= _UNBROKEN and text[-1:] not in (" ", "\t"):
        return text  # what _break does with such a line: nothing
    broken: list[str] = []
    _break(text, broken.append)
    return _crlf(broken)


def _unstructured(name: str) -> bool:
    """Whether the email package writes this header's value as given (Subject, List-*, ...)."""
    return issubclass(_HEADERS[name], UnstructuredHeader)


class BatchWire:
    """``render(batch, rcpt, msg_id)`` for every recipient of one batch, mostly without MIME.

    With a ``signer`` (DKIM) every message it returns is signed, whichever way it
    was built: the one place the SMTP and outbox transports sign what they send.
    """

    def __init__(
        self, batch: MessageBatch, render: Render, signer: MessageSigner | None = None
    ) -> None:
        self.batch = batch
        self.render_standard = render
        self.signer = signer
        template = batch.template
        self._slots = {
            "Subject": bool(template.subject.slots),
            **{name: bool(part.slots) for name, part in template.headers},
        }
        self._layout: list[tuple[str, bytes]] | None = None
        self._text, self._html = _Body(template.text), _Body(template.html)
        self._parts: tuple[bytes, bytes] = (b"", b"")
        candidates = (r for r in batch.recipients if self._plain(r))
        for probe in itertools.islice(candidates, _PROBES):
            if self._learn(probe) is not None:
                break  # learnt (or proved wrong: then the whole batch goes the standard way)

    @property
    def ready(self) -> bool:
        """Whether plain recipients of this batch skip the email package."""
        return self._layout is not None

    def render(self, rcpt: Recipient, msg_id: str) -> bytes:
        """The recipient's final wire bytes (signed, with a signer)."""
        data = self._unsigned(rcpt, msg_id)
        return data if self.signer is None else self.signer.sign(data)

    def _unsigned(self, rcpt: Recipient, msg_id: str) -> bytes:
        if self._layout is None or not self._plain(rcpt) or not _MESSAGE_ID.fullmatch(msg_id):
            return self.render_standard(self.batch, rcpt, msg_id)
        data = self._fast(rcpt, msg_id, formatdate(localtime=False))
        return data if data is not None else self.render_standard(self.batch, rcpt, msg_id)

    # recipients --------------------------------------------------------------

    def _plain(self, rcpt: Recipient) -> bool:
        """Nothing in this recipient's headers that the email package would quote or encode."""
        name = rcpt.values.get("name") or ""
        local, _, domain = rcpt.email.rpartition("@")
        plain_name = not name or _NAME.fullmatch(name) is not None
        plain_address = bool(_LOCAL.fullmatch(local) and _DOMAIN.fullmatch(domain))
        return plain_name and plain_address  # filled header values are checked in _fast

    def _fast(
        self, rcpt: Recipient, msg_id: str, date: str, boundary: str | None = None
    ) -> bytes | None:
        """The wire bytes, or None if a filled header value is not plain (then nothing is drawn)."""
        assert self._layout is not None
        filled = self.batch.template.fill({**rcpt.values, "email": rcpt.email})
        name = rcpt.values.get("name") or ""
        varying = {
            "To": f"{name} <{rcpt.email}>" if name else rcpt.email,
            "Date": date,
            "Message-ID": msg_id,
            "Subject": filled.subject,
            **filled.headers,
        }
        head: list[bytes] = []
        multipart = -1
        for key, fixed in self._layout:
            if fixed:
                head.append(fixed)
            elif key == "Content-Type":
                multipart = len(head)
                head.append(b"")
            else:
                value = varying[key]
                line = f"{key}: {value}"
                if not _TEXT.fullmatch(value) or "=?" in value or len(line) > _LONGEST_HEADER:
                    return None
                head.append(line.encode("ascii") + b"\r\n")
        boundary = boundary or new_boundary()
        head[multipart] = f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode()
        raw = {name: rcpt.values.get(name, "") for name in self.batch.template.names}
        raw["email"] = rcpt.email
        escaped = {name: escape(value) for name, value in raw.items()}
        text = self._encode(self._text, filled.text, raw, escaped)
        html = self._encode(self._html, filled.html, raw, escaped)
        mark = b"--" + boundary.encode("ascii")
        plain_headers, html_headers = self._parts
        return b"".join(
            (
                *head,
                b"\r\n",
                mark + b"\r\n",
                plain_headers,
                text,
                b"\r\n" + mark + b"\r\n",
                html_headers,
                html,
                b"\r\n" + mark + b"--\r\n",
            )
        )

    @staticmethod
    def _encode(body: _Body, filled: str, raw: dict[str, str], escaped: dict[str, str]) -> bytes:
        """The part's wire payload (CRLF line ends), from the pre-encoded lines if possible."""
        encoded = body.encode(raw, escaped) if body.usable else None
        if encoded is None:
            encoded = qp_body(filled).replace("\n", "\r\n").encode("ascii")
        return encoded

    # the probe ---------------------------------------------------------------

    def _learn(self, probe: Recipient) -> bool | None:
        """Split the probe's standard bytes into fixed and varying parts; check they round-trip.

        True: learnt.  False: this batch cannot go the fast way.  None: this probe's
        filled header values are not plain or it is refused; another may do.
        """
        msg_id = f"<probe.0@{self.batch.sender.domain}>"
        if not _MESSAGE_ID.fullmatch(msg_id):
            return False
        try:
            standard = self.render_standard(self.batch, probe, msg_id)
        except ValidationError:
            return None
        found = _BOUNDARY.search(standard)
        if found is None:
            return False
        boundary = found.group(1)
        mark = b"--" + boundary
        head, _, rest = standard.partition(b"\r\n\r\n" + mark + b"\r\n")
        sections = rest.split(b"\r\n" + mark)
        if len(sections) != 3 or sections[2] != b"--\r\n":
            return False
        plain_headers = sections[0].partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        html_headers = sections[1].removeprefix(b"\r\n").partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        layout: list[tuple[str, bytes]] = []
        date = None
        for line in head.split(b"\r\n"):
            key = line.partition(b":")[0].decode("ascii", "replace")
            if line[:1] in (b" ", b"\t") or not key:
                return False  # a folded header: leave this batch to the email package
            if key == "Date":
                matched = _DATE.match(line)
                if matched is None:
                    return False
                date = matched.group(1).decode("ascii")
            varies = key in ("To", "Date", "Message-ID", "Content-Type") or self._slots.get(key)
            if self._slots.get(key) and not _unstructured(key):
                return False  # the email package parses (and may rewrite) a filled Cc, Reply-To...
            layout.append((key, b"" if varies else line + b"\r\n"))
        if date is None or [k for k, _ in layout].count("Content-Type") != 1:
            return False
        self._layout, self._parts = layout, (plain_headers, html_headers)
        fast = self._fast(probe, msg_id, date, boundary.decode("ascii"))
        if fast == standard:
            return True
        self._layout = None
        return None if fast is None else False
