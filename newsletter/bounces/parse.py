"""One parser for everything that comes back: DSNs, real servers' bounces, ARF, auto-replies.

``parse(raw, verp=..., envelope_to=...)`` never raises and never touches the
database: it says what the mail is (``InboundKind``), which addresses it
reports, the enhanced status code and the remote server's words, and what
names the ledger row (the VERP token, the original Message-ID).  ``apply``
looks those up.  The order of the checks is the order of trust:

1. ARF feedback reports (RFC 5965: Yahoo, AOL, Outlook.com/Hotmail JMRP,
   Comcast, ...): ``complaint``, unless the feedback type says it is not one.
2. RFC 3464 delivery status notifications: every ``failed`` or ``delayed``
   recipient block with its ``Status`` and ``Diagnostic-Code``.
3. Auto-replies (RFC 3834 ``Auto-Submitted``, ``X-Autoreply``,
   ``Precedence: auto_reply``, out-of-office subjects), unless the mail also
   looks like a bounce (Exim and others mark bounces ``auto-replied`` too).
4. The non-standard bounces of real servers (qmail, old Exchange, Yahoo,
   GroupWise, ...): ``flufl.bounce``'s detectors, the ones Mailman uses, with
   the status code read from the text when there is one.
5. Otherwise ``unparsed``: kept for a person, never dropped.

Hard or soft is decided by the enhanced status code (RFC 3463) where there is
one: ``5.x.x`` is hard and ``4.x.x`` soft, with the exceptions most senders
make because the address itself is fine: ``5.2.2`` (mailbox full), ``5.3.4``
(message too big), ``5.6.x`` (content) and ``5.7.x`` (blocked by policy,
reputation or as spam: what SendGrid calls "blocked") count as soft; a
``5.7.x`` whose text says the user does not exist is still hard.  A DSN
``delayed`` action is soft whatever its code.  Without a code, flufl.bounce's
own permanent/temporary verdict decides.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr

from newsletter.bounces.verp import Verp, VerpKind, VerpMatch
from newsletter.models.bounces import InboundKind

NOT_OURS = VerpMatch(VerpKind.FOREIGN)
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(r"(?<!\d)([45]\d\d)[ -]")
_OUR_MESSAGE_ID = re.compile(r"<(\d{1,19})\.([0-9a-f]{32})@([^<>\s]+)>", re.IGNORECASE)
_BODY_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_NO_SUCH_USER = re.compile(
    r"(no such|unknown|invalid) (user|recipient|mailbox|address)|user unknown|does not exist"
    r"|address rejected|not found|mailbox unavailable",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|sv|fw|fwd)\s*:\s*)*"
    r"(auto(?:matic|matische)?[ -]?(?:reply|response|antwort|respuesta|r[ée]ponse)"
    r"|auto:|autoreply|autoresponse|out of (?:the )?office|ooo\b|abwesenheit|vacation"
    r"|away from (?:the|my) office|i am away|on (?:vacation|holiday|leave)"
    r"|r[ée]ponse automatique|respuesta autom[aá]tica|fuera de la oficina"
    r"|risposta automatica|absent|absence)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|not (?:be )?delivered|delivery (?:status|fail|notification|has failed|problem)"
    r"|failure notice|returned mail|mail delivery failed|delivery failure|could not be delivered"
    r"|non remis|unzustellbar|nicht zustellbar|delayed mail|message delayed|warning: could not"
    r"|rejected|returned to sender",
    re.IGNORECASE,
)
_FULL = re.compile(r"quota|mailbox (?:is )?full|storage|insufficient space", re.IGNORECASE)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "maildaemon", "mail delivery")
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other", ""})
_MAX_DIAGNOSTIC = 1000


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a report is about."""

    address: str | None
    kind: InboundKind
    status: str | None = None
    diagnostic: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a mail is and what names its recipient; the input of ``apply``."""

    kind: InboundKind
    failures: tuple[Failure, ...] = ()
    verp: VerpMatch = NOT_OURS
    original_ids: tuple[str, ...] = ()  # Message-IDs of the original message(s) in the report
    message_id: str | None = None  # the bounce's own
    date: str | None = None  # the bounce's Date header
    feedback_type: str | None = None
    how: str = ""  # which reader recognised it: arf, dsn, auto-reply, flufl.<detector>
    problem: str | None = None  # why it is unparsed

    @property
    def recipients(self) -> list[str]:
        return list(dict.fromkeys(f.address for f in self.failures if f.address))

    @property
    def status(self) -> str | None:
        return next((f.status for f in self._ranked() if f.status), None)

    @property
    def diagnostic(self) -> str | None:
        return next((f.diagnostic for f in self._ranked() if f.diagnostic), None)

    def _ranked(self) -> list[Failure]:
        """Failures of the mail's own kind first (a hard DSN's hard block speaks for it)."""
        return sorted(self.failures, key=lambda f: f.kind != self.kind)

    def as_json(self, file: str) -> dict[str, object]:
        """The ``bounces ingest --json`` line."""
        return {
            "file": file,
            "kind": self.kind.value,
            "recipients": self.recipients,
            "status": self.status,
            "diagnostic": self.diagnostic,
        }


# --- small readers ---------------------------------------------------------------------


def _header(msg: Message, name: str) -> str:
    """A header as text (RFC 2047 decoded, unfolded); "" when absent or undecodable."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, TypeError):
        text = str(value)
    return " ".join(text.split())


def _address(value: str) -> str | None:
    """``rfc822; <User@Example.org>`` -> ``user@example.org`` (None if no address)."""
    value = value.split(";", 1)[1] if ";" in value else value
    _name, addr = parseaddr(value.strip())
    addr = addr.strip().strip("<>").strip()
    return addr.lower() if "@" in addr and " " not in addr else None


def status_code(text: str | None) -> str | None:
    """The first enhanced status code (RFC 3463) in a text: ``5.1.1``."""
    found = _STATUS.search(text or "")
    return ".".join(found.groups()) if found else None


def kind_for_status(status: str, text: str | None = None) -> InboundKind:
    """Hard or soft from an enhanced status code (see the module docstring for the exceptions)."""
    klass, subject, detail = status.split(".")
    if klass != "5":
        return InboundKind.SOFT
    if (subject, detail) in (("2", "2"), ("3", "4")) or subject == "6":
        return InboundKind.SOFT
    if subject == "7":
        return InboundKind.HARD if _NO_SUCH_USER.search(text or "") else InboundKind.SOFT
    return InboundKind.HARD


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    one_line = " ".join(text.replace("\x00", "").split())
    return one_line[:_MAX_DIAGNOSTIC] or None


def _parts(msg: Message) -> Iterator[Message]:
    """Every part, depth first, tolerating broken structure (a bare payload, a loop)."""
    seen: set[int] = set()
    stack = [msg]
    while stack:
        part = stack.pop()
        if id(part) in seen or len(seen) > 500:
            continue
        seen.add(id(part))
        yield part
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def _text_of(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except (AssertionError, LookupError, ValueError, TypeError):
        payload = None
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _body_text(msg: Message, limit: int = 200_000) -> str:
    """The text parts of the mail (not the attached original), for heuristics."""
    chunks: list[str] = []
    for part in _parts(msg):
        if part.get_content_maintype() == "text" and part.get_content_subtype() in (
            "plain",
            "html",
        ):
            chunks.append(_text_of(part))
        if sum(map(len, chunks)) > limit:
            break
    return "\n".join(chunks)[:limit]


def _header_blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or ``feedback-report`` part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # some servers send it as text: parse the blocks ourselves
        text = _text_of(part)
        blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
        return [email.message_from_string(block + "\n") for block in blocks if block.strip()]
    return []


def _originals(msg: Message) -> list[Message]:
    """The original message (or its headers) attached to a report."""
    found: list[Message] = []
    for part in _parts(msg):
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part is not msg:
            payload = part.get_payload()
            if isinstance(payload, list):
                found.extend(p for p in payload if isinstance(p, Message))
            elif isinstance(payload, str):
                found.append(email.message_from_string(payload))
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            found.append(email.message_from_string(_text_of(part)))
    return found


def _original_ids(msg: Message, originals: Sequence[Message]) -> tuple[str, ...]:
    """Message-IDs of the original: from attached headers, else quoted in the body text."""
    ids = [_header(o, "Message-ID") for o in originals]
    ids = [i for i in ids if i]
    if not ids:
        ids = _BODY_MESSAGE_ID.findall(_body_text(msg))
    return tuple(dict.fromkeys(i.strip() for i in ids))


def our_ledger_id(message_id: str) -> int | None:
    """The ledger id inside one of our Message-IDs (``transports.base.message_id``)."""
    found = _OUR_MESSAGE_ID.fullmatch(message_id.strip())
    return int(found.group(1)) if found else None


# --- who it is for ---------------------------------------------------------------------

_VERP_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


_PREFERENCE = (VerpKind.LEDGER, VerpKind.FORGED, VerpKind.TEST, VerpKind.PLAIN, VerpKind.EXTRA)


def _verp(
    msg: Message, verp: Verp, envelope_to: Iterable[str], originals: Sequence[Message] = ()
) -> VerpMatch:
    """Our address the mail was sent to: the envelope, the delivery headers, then the
    ``Return-Path`` of the attached original (FBLs attach it as the mailbox received it).

    A signed token wins; a forged one outranks the plain address, so a bad token
    is never silently bypassed.
    """
    candidates = list(envelope_to)
    for name in _VERP_HEADERS:
        for value in msg.get_all(name) or []:
            candidates.extend(addr for _n, addr in getaddresses([str(value)]) if addr)
    for original in originals:
        candidates.extend(_header(original, "Return-Path").split())
    matches = [verp.match(candidate) for candidate in candidates]
    for kind in _PREFERENCE:
        found = next((m for m in matches if m.kind is kind), None)
        if found is not None:
            return found
    return NOT_OURS


# --- the readers, in order of trust ----------------------------------------------------


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "") or "").lower()


def _arf(msg: Message) -> tuple[InboundKind, list[Failure], str] | None:
    """An ARF report (RFC 5965) or Hotmail's older JMRP form."""
    report = next(
        (p for p in _parts(msg) if p.get_content_type() == "message/feedback-report"), None
    )
    jmrp = bool(msg.get("X-HmXmrOriginalRecipient"))
    if report is None and _report_type(msg) != "feedback-report" and not jmrp:
        return None
    fields = _header_blocks(report) if report is not None else []
    first = fields[0] if fields else Message()
    feedback = _header(first, "Feedback-Type").lower()
    addresses = [_address(_header(block, "Original-Rcpt-To")) for block in fields]
    addresses += [_address(_header(msg, "X-HmXmrOriginalRecipient"))]
    if not any(addresses):
        for original in _originals(msg):
            addresses += [addr.lower() for _n, addr in getaddresses(original.get_all("To") or [])]
    kind = InboundKind.COMPLAINT if feedback in _COMPLAINT_TYPES else InboundKind.AUTO_REPLY
    failures = [Failure(a, kind) for a in dict.fromkeys(a for a in addresses if a)]
    return kind, failures or [Failure(None, kind)], feedback or "abuse"


def _dsn(msg: Message) -> tuple[list[Failure], int]:
    """RFC 3464: one failure per ``failed`` or ``delayed`` recipient block, and how many
    blocks reported success (delivered, relayed, expanded)."""
    parts = [p for p in _parts(msg) if p.get_content_type() == "message/delivery-status"]
    failures: list[Failure] = []
    successes = 0
    for part in parts:
        for block in _header_blocks(part):
            action = _header(block, "Action").lower()
            recipient = _header(block, "Original-Recipient") or _header(block, "Final-Recipient")
            if not recipient and not action:
                continue  # the per-message block
            diagnostic = _clean(_header(block, "Diagnostic-Code").split(";", 1)[-1])
            status = _specific(status_code(_header(block, "Status")), status_code(diagnostic))
            if action.startswith("delayed"):
                kind = InboundKind.SOFT
            elif action.startswith(("fail", "error")) or (not action and status):
                kind = kind_for_status(status, diagnostic) if status else InboundKind.HARD
            else:
                successes += int(action.startswith(("deliver", "relay", "expand")))
                continue  # not a failure
            address = _address(_header(block, "Final-Recipient")) or _address(recipient)
            original = _address(_header(block, "Original-Recipient"))
            failures.append(Failure(original or address, kind, status, diagnostic))
    return failures, successes


def _specific(status: str | None, detail: str | None) -> str | None:
    """The Status field's code, or the diagnostic's when that says more (5.0.0 vs 5.7.1)."""
    if status is None:
        return detail
    if detail and status.endswith(".0.0") and detail[0] == status[0]:
        return detail
    return status


def _sender_is_daemon(msg: Message) -> bool:
    sender = (_header(msg, "From") + " " + _header(msg, "Sender")).lower()
    return any(name in sender for name in _DAEMONS) or _header(msg, "Return-Path") == "<>"


def _auto_reply(msg: Message) -> bool:
    """RFC 3834 and the common non-standard marks of vacation and ticket robots."""
    auto = _header(msg, "Auto-Submitted").lower()
    marked = (
        (auto and not auto.startswith("no"))
        or msg.get("X-Autoreply") is not None
        or msg.get("X-Autorespond") is not None
        or msg.get("X-Autoresponder") is not None
        or _header(msg, "Precedence").lower() in ("auto_reply", "auto-reply")
        or _header(msg, "X-Precedence").lower() in ("auto_reply", "auto-reply")
        or bool(_AUTO_SUBJECT.search(_header(msg, "Subject")))
    )
    if not marked:
        return False
    subject = _header(msg, "Subject")
    return not (_sender_is_daemon(msg) or _BOUNCE_SUBJECT.search(subject))


def _heuristic(msg: Message) -> tuple[list[Failure], str] | None:
    """flufl.bounce's detectors for the mail servers that do not speak RFC 3464."""
    from flufl.bounce._scan import _DETECTORS

    for detector in _DETECTORS:
        if detector.__name__ == "DSN":
            continue  # read above, with the status codes flufl does not return
        try:
            temporary, permanent = detector().process(msg)
        except Exception:  # a detector's bug on odd input must not lose the mail
            continue
        if temporary or permanent:
            text = _body_text(msg)
            failures = [
                _heuristic_failure(addr, text, permanent=True) for addr in sorted(permanent)
            ]
            failures += [
                _heuristic_failure(addr, text, permanent=False)
                for addr in sorted(set(temporary) - set(permanent))
            ]
            return failures, f"flufl.{detector.__name__.lower()}"
    return None


def _heuristic_failure(raw: bytes, text: str, *, permanent: bool) -> Failure:
    """One address flufl found: the status code on the server's line decides, else flufl.

    Without an enhanced code, the basic SMTP reply and a few words still do:
    4xx and 552 (storage exceeded), or "quota" / "mailbox full", are soft.
    """
    address = raw.decode("ascii", "replace").strip().lower()
    line = _line_about(text, address)
    status = status_code(line)
    if status is not None:
        return Failure(address or None, kind_for_status(status, line), status, _clean(line))
    reply = _REPLY.search(line or "")
    soft = (reply is not None and (reply.group(1)[0] == "4" or reply.group(1) == "552")) or bool(
        _FULL.search(line or "")
    )
    kind = InboundKind.SOFT if soft or not permanent else InboundKind.HARD
    return Failure(address or None, kind, None, _clean(line))


def _line_about(text: str, address: str) -> str | None:
    """The server's words: the line with a status code or SMTP reply nearest the address."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if address and address in line.lower()), 0)
    ordered = lines[at:] + lines[:at]
    for pattern in (_STATUS, _REPLY):
        for line in ordered[:40]:
            if pattern.search(line):
                return line
    if address and address in lines[at].lower() and at + 1 < len(lines):
        return lines[at + 1]  # Exim, qmail: the reason is the line under the address
    return None


# --- the entry point -------------------------------------------------------------------


@dataclass
class _Found:
    kind: InboundKind
    failures: list[Failure] = field(default_factory=list)
    how: str = ""
    feedback: str | None = None


def _classify(msg: Message) -> _Found | None:
    arf = _arf(msg)
    if arf is not None:
        kind, failures, feedback = arf
        return _Found(kind, failures, "arf", feedback)
    dsn, successes = _dsn(msg)
    if dsn:
        return _Found(_overall(dsn), dsn, "dsn")
    if _auto_reply(msg):
        return _Found(InboundKind.AUTO_REPLY, [], "auto-reply")
    heuristic = _heuristic(msg)
    if heuristic is not None:
        failures, how = heuristic
        return _Found(_overall(failures), failures, how)
    if successes:  # a DSN whose every recipient was delivered, relayed or expanded
        return _Found(InboundKind.AUTO_REPLY, [], "dsn")
    return None


def _overall(failures: Sequence[Failure]) -> InboundKind:
    return (
        InboundKind.HARD if any(f.kind is InboundKind.HARD for f in failures) else InboundKind.SOFT
    )


def parse(raw: bytes, *, verp: Verp, envelope_to: Sequence[str] = ()) -> Parsed:
    """What a mail is and who it is about; ``unparsed`` (with the reason) for anything else."""
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the email package is lenient; anything left is a broken mail
        return Parsed(InboundKind.UNPARSED, problem=f"not a mail message: {exc}")
    try:
        return _parse(msg, verp, envelope_to)
    except RecursionError:
        return Parsed(InboundKind.UNPARSED, problem="nested too deeply to read")
    except Exception as exc:  # a mail we cannot read is kept, not a crash of the receiver
        return Parsed(InboundKind.UNPARSED, problem=f"cannot read: {type(exc).__name__}: {exc}")


def _parse(msg: Message, verp: Verp, envelope_to: Sequence[str]) -> Parsed:
    found = _classify(msg)
    message_id = _header(msg, "Message-ID") or None
    date = _header(msg, "Date") or None
    if found is None:
        problem = "no delivery report, complaint report or auto-reply found"
        if not msg.keys():
            problem = "no mail headers"
        match = _verp(msg, verp, envelope_to)
        return Parsed(InboundKind.UNPARSED, verp=match, message_id=message_id, date=date,
                      problem=problem)  # fmt: skip
    originals = _originals(msg) if found.kind is not InboundKind.AUTO_REPLY else []
    return Parsed(
        found.kind,
        failures=tuple(found.failures),
        verp=_verp(msg, verp, envelope_to, originals),
        original_ids=_original_ids(msg, originals) if found.failures else (),
        message_id=message_id,
        date=date,
        feedback_type=found.feedback,
        how=found.how,
    )
