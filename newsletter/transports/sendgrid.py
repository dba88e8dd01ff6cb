"""SendGrid v3 ``mail/send``: one HTTP call per batch of up to 1000 personalizations.

The rendered issue goes once per call with its ``%%placeholders%%`` left in;
each recipient is a personalization carrying ``substitutions`` for those
placeholders, its own filled headers (SendGrid does not substitute inside
headers, so ``List-Unsubscribe`` is filled here) and ``custom_args`` with the
ledger id, which comes back in every webhook event.

How answers become outcomes (partial failure is data, never an exception):

===========================  ==========================================================
202 (any 2xx)                every recipient ACCEPTED, provider_id = ``X-Message-Id``
400                          PERMANENT, detail = SendGrid's ``errors[].message``
401 / 403                    TEMPORARY + ``error`` (key refused: pause, tell the admin)
413                          split in halves and send each (recursively)
429                          TEMPORARY + ``retry_after`` from ``X-RateLimit-Reset``
5xx                          TEMPORARY
other 4xx (404, 405, ...)    TEMPORARY + ``error`` (wrong ``sendgrid_host``?)
not connected / not sent     TEMPORARY (connection refused, connect timeout, DNS)
sent, no answer              UNKNOWN (read timeout, reset: maybe sent, never auto-retry)
===========================  ==========================================================

A recipient the messenger can refuse on its own (CR/LF in a header value, the
same address twice in one batch, which SendGrid answers with a 400 for the
whole batch) is PERMANENT without being sent; the rest of the batch goes.

The API key never appears in a detail, an error or a log line: every text we
produce passes through ``_redact`` and python_http_client's debug log of the
request headers is filtered.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import ssl
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

import sendgrid
from python_http_client.exceptions import HTTPError

from newsletter.errors import ConfigError, ValidationError
from newsletter.message import (
    RenderedEmail,
    Template,
    check_header_value,
    escape,
    placeholder,
    substitutions,
)
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    Outcome,
    Recipient,
    RecipientResult,
    Sender,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]
DEFAULT_HOST = "https://api.sendgrid.com"
LEDGER_ARG = "ledger_id"
_BEARER = re.compile(r"Bearer\s+[^\s'\",}]+")
_NAME_FORBIDDEN = re.compile(r"\s*[,;]\s*")  # SendGrid refuses , and ; in to.name


class _HttpClientLogFilter(logging.Filter):
    """Keep secrets and subscriber data out of python_http_client's DEBUG log.

    It logs the request headers (``Authorization: Bearer <key>``), every
    response body (which could echo the key) and the whole payload: up to
    1000 subscriber addresses and the full issue per call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("PAYLOAD: "):
            message = f"PAYLOAD: {len(message) - 9} characters, not logged"
        message = _BEARER.sub("Bearer [redacted]", message)
        for key in list(self.keys):
            message = message.replace(key, "[redacted]")
        record.msg, record.args = message, ()
        return True


_LOG_FILTER = _HttpClientLogFilter()
logging.getLogger("python_http_client.client").addFilter(_LOG_FILTER)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One recipient that goes in the request, with its position in the batch."""

    index: int
    rcpt: Recipient
    personalization: JSON


@dataclass(frozen=True, slots=True)
class _Answer:
    """The outcome of one request for all its entries."""

    outcome: Outcome
    detail: str
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


class SendGridMessenger:
    """A ``Messenger`` for SendGrid's v3 Web API (``python_http_client`` underneath)."""

    name = "sendgrid"
    max_batch = 1000

    def __init__(
        self,
        api_key: str,
        host: str = DEFAULT_HOST,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        *,
        sandbox: bool = False,
    ) -> None:
        """``clock`` turns ``X-RateLimit-Reset`` (a Unix time) into seconds to wait.

        ``sandbox`` asks SendGrid to validate without delivering (a 200, counted
        as accepted): for checking a key and payloads against the real API.
        """
        if not api_key:
            raise ConfigError("the SendGrid transport needs sendgrid_api_key")
        if not host.startswith(("https://", "http://")):
            raise ConfigError(f"sendgrid_host must be an http(s) URL, not {host!r}")
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.sandbox = sandbox
        self._api_key = api_key
        _LOG_FILTER.keys.add(api_key)
        self._clock = clock
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=self.host)
        self._client.client.timeout = timeout  # python_http_client.Client(timeout=...)

    def __repr__(self) -> str:
        return f"SendGridMessenger(host={self.host!r}, timeout={self.timeout})"

    def send(self, batch: MessageBatch) -> BatchResult:
        """One mail/send call (more only after a 413) for the whole batch."""
        if len(batch.recipients) > self.max_batch:
            raise ValueError(f"batch of {len(batch.recipients)} exceeds max_batch {self.max_batch}")
        if not batch.recipients:
            return BatchResult(())
        _check_batch(batch)
        entries, results = self._prepare(batch)
        answer = BatchResult(())
        if entries:
            answer = self._deliver(_message(batch, self.sandbox), entries)
            results.update((e.index, r) for e, r in zip(entries, answer.results, strict=True))
        ordered = tuple(results[index] for index in range(len(batch.recipients)))
        return BatchResult(ordered, retry_after=answer.retry_after, error=answer.error)

    def close(self) -> None:
        """Nothing to release: python_http_client opens one connection per request."""

    # building the request ----------------------------------------------------

    def _prepare(self, batch: MessageBatch) -> tuple[list[_Entry], dict[int, RecipientResult]]:
        """Personalizations for the recipients that can go, and results for those that cannot."""
        personalization = _Personalizer(batch)
        entries: list[_Entry] = []
        refused: dict[int, RecipientResult] = {}
        first_ref: dict[str, str] = {}  # SendGrid 400s the whole call for a repeated address
        for index, rcpt in enumerate(batch.recipients):
            address = rcpt.email.lower()
            if address in first_ref:
                detail = (
                    f"not sent: {rcpt.email} is already in this batch (ledger {first_ref[address]})"
                )
                refused[index] = RecipientResult(rcpt.ref, Outcome.PERMANENT, detail=detail)
                continue
            first_ref[address] = rcpt.ref
            try:
                item = personalization(rcpt)
            except ValidationError as exc:
                detail = self._redact(f"not sent: {exc}")
                refused[index] = RecipientResult(rcpt.ref, Outcome.PERMANENT, detail=detail)
                continue
            entries.append(_Entry(index, rcpt, item))
        return entries, refused

    # sending -----------------------------------------------------------------

    def _deliver(self, message: JSON, entries: Sequence[_Entry]) -> BatchResult:
        """Post ``entries``; on 413 split in halves, stopping early if told to back off."""
        answer = self._post({**message, "personalizations": [e.personalization for e in entries]})
        if answer is not None:
            return self._uniform(entries, answer)
        if len(entries) == 1:
            detail = "SendGrid 413: this one message is larger than SendGrid accepts"
            return self._uniform(entries, _Answer(Outcome.PERMANENT, detail))
        middle = len(entries) // 2
        log.info("sendgrid: 413 for %d personalizations, splitting", len(entries))
        first = self._deliver(message, entries[:middle])
        if first.error is not None or first.retry_after is not None:
            rest = _Answer(
                _stop_outcome(first),
                _stop_detail(first),
                error=first.error,
                retry_after=first.retry_after,
            )
            return _combine(first, self._uniform(entries[middle:], rest))
        return _combine(first, self._deliver(message, entries[middle:]))

    def _post(self, payload: JSON) -> _Answer | None:
        """The answer for one request, or None for a 413 (the caller splits)."""
        count = len(payload["personalizations"])
        try:
            response = self._client.client.mail.send.post(request_body=payload)
        except HTTPError as exc:
            log.warning("sendgrid: %d personalizations -> HTTP %s", count, exc.status_code)
            return None if exc.status_code == 413 else self._refused(exc)
        except urllib.error.URLError as exc:  # raised before the request was fully sent
            log.warning("sendgrid: %d personalizations -> not sent (%s)", count, exc.reason)
            return self._unreachable(exc)
        except (OSError, http.client.HTTPException) as exc:  # sent; the answer never came
            log.warning("sendgrid: %d personalizations -> no answer (%s)", count, exc)
            return _Answer(
                Outcome.UNKNOWN,
                self._redact(
                    f"no answer from SendGrid ({_describe(exc)}); the mail may have been sent, "
                    "so it is not retried automatically"
                ),
            )
        message_id = _header(response.headers, "X-Message-Id")
        log.info("sendgrid: %d personalizations -> %s %s", count, response.status_code, message_id)
        detail = f"SendGrid {response.status_code}"
        if response.status_code == 200 and self.sandbox:
            detail += " (sandbox mode: validated, not delivered)"
        return _Answer(Outcome.ACCEPTED, detail, provider_id=message_id)

    def _refused(self, exc: HTTPError) -> _Answer:
        """An HTTP error status other than 413."""
        status = int(exc.status_code)
        detail = self._redact(f"SendGrid {status}: {_provider_messages(exc.body) or exc.reason}")
        if status == 400:
            return _Answer(Outcome.PERMANENT, detail)
        if status in (401, 403):
            # TEMPORARY, not PERMANENT: the engine records PERMANENT as failed for good,
            # and these recipients must go once the admin fixes the key and resumes.
            refused = self._redact(f"SendGrid refused the API key: {detail}")
            return _Answer(Outcome.TEMPORARY, detail, error=refused)
        if status == 429:
            retry_after = _retry_after(exc.headers, self._clock())
            return _Answer(Outcome.TEMPORARY, detail, retry_after=retry_after)
        if status >= 500:
            return _Answer(Outcome.TEMPORARY, detail)
        error = self._redact(f"{detail} (is sendgrid_host {self.host} right?)")
        return _Answer(Outcome.TEMPORARY, detail, error=error)

    def _unreachable(self, exc: urllib.error.URLError) -> _Answer:
        """The request never (completely) left: safe to retry later."""
        detail = self._redact(f"could not reach SendGrid at {self.host}: {_describe(exc.reason)}")
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            return _Answer(Outcome.TEMPORARY, detail, error=detail)
        return _Answer(Outcome.TEMPORARY, detail)

    def _uniform(self, entries: Sequence[_Entry], answer: _Answer) -> BatchResult:
        results = tuple(
            RecipientResult(e.rcpt.ref, answer.outcome, answer.provider_id, answer.detail)
            for e in entries
        )
        return BatchResult(results, retry_after=answer.retry_after, error=answer.error)

    def _redact(self, text: str) -> str:
        return _BEARER.sub("Bearer [redacted]", text.replace(self._api_key, "[redacted]"))


# payload -----------------------------------------------------------------------


def _message(batch: MessageBatch, sandbox: bool) -> JSON:
    """Everything but the personalizations: the same for every request of a batch."""
    source = batch.template.source
    content = [
        {"type": kind, "value": value}
        for kind, value in (("text/plain", source.text), ("text/html", source.html))
        if value
    ]
    message: JSON = {
        "from": _address(batch.sender.email, batch.sender.name),
        "subject": source.subject,
        "content": content,
        # We send our own List-Unsubscribe; SendGrid's footer link would be a second,
        # untracked way out that our database never hears about.  Clicks and opens are
        # tracked first-party (newsletter.tracking), per recipient and only with their
        # consent; SendGrid's own tracking would wrap the links a second time and track
        # readers who turned tracking off, so it is off explicitly, whatever the account says.
        "tracking_settings": {
            "subscription_tracking": {"enable": False},
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
        },
        "mail_settings": {"sandbox_mode": {"enable": sandbox}},
    }
    if batch.sender.reply_to:
        message["reply_to"] = {"email": batch.sender.reply_to}
    return message


class _Personalizer:
    """One recipient's envelope; raises ValidationError for CR/LF in what becomes a header.

    Built once per batch: the header parts, the substitution keys the content
    uses (in ``substitutions`` order) and the fields that need HTML escaping
    are worked out here, so each recipient costs a few dict look-ups and
    joins.  The result is the same as filling the header template with
    ``Template.fill`` and filtering ``substitutions``, key order included.
    """

    def __init__(self, batch: MessageBatch) -> None:
        self.names = batch.template.names
        used = _used_placeholders(batch.template.source, self.names)
        self.headers = _header_template(batch.template).headers
        self.subs = [
            (key, name, html)
            for name in self.names
            for key, html in ((placeholder(name), False), (placeholder(name, html=True), True))
            if key in used
        ]
        self.escape = sorted(
            {name for _, name, html in self.subs if html}
            | {name for _, part in self.headers for name, html in part.slots if html}
        )
        self.custom = {str(k): str(v) for k, v in batch.custom_args.items()}

    def __call__(self, rcpt: Recipient) -> JSON:
        given = rcpt.values
        raw = {name: given.get(name, "") for name in self.names}
        raw["email"] = rcpt.email
        check_header_value("name", raw["name"])  # what Template.fill checks, in its order
        check_header_value("email", raw["email"])
        escaped = {name: escape(raw[name]) for name in self.escape}
        filled = {key: part.fill(raw, escaped) for key, part in self.headers}
        name = _check_header("name", given.get("name") or "")
        item: JSON = {"to": [_address(rcpt.email, name)]}
        if self.subs:
            item["substitutions"] = {
                key: escaped[field] if html else raw[field] for key, field, html in self.subs
            }
        if filled:
            item["headers"] = {k: _check_header(k, v) for k, v in filled.items()}
        item["custom_args"] = {**self.custom, LEDGER_ARG: str(rcpt.ref)}
        return item


def _address(email: str, name: str | None) -> JSON:
    address: JSON = {"email": email}
    clean = _NAME_FORBIDDEN.sub(" ", name or "").strip()
    if clean:
        address["name"] = clean
    return address


def _header_template(template: Template) -> Template:
    """The template's headers alone, so filling them per recipient skips the HTML."""
    source = template.source
    return Template.compile(RenderedEmail(subject="", html="", text="", headers=source.headers))


def _used_placeholders(source: RenderedEmail, names: tuple[str, ...]) -> frozenset[str]:
    """Substitution keys that occur in subject or content: the others would be dead weight."""
    keys = substitutions({}, names).keys()
    return frozenset(k for k in keys if k in source.subject or k in source.text or k in source.html)


def _check_batch(batch: MessageBatch) -> None:
    """Batch-wide header values are a caller's bug: raise before anything is sent."""
    _check_sender(batch.sender)
    _check_header("subject", batch.template.source.subject)
    for name, value in batch.template.source.headers.items():
        _check_header("header name", name)
        _check_header(name, value)


def _check_sender(sender: Sender) -> None:
    _check_header("sender address", sender.email)
    _check_header("sender name", sender.name)
    if sender.reply_to:
        _check_header("reply-to address", sender.reply_to)


# str.splitlines() breaks and NUL: the email package refuses every one of them in a
# header (with a bare ValueError), message.check_header_value only CR, LF and NUL.
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _check_header(name: str, value: str) -> str:
    """``check_header_value`` plus the Unicode line breaks: no header injection, no crash."""
    if not _LINE_BREAKS.isdisjoint(value):
        raise ValidationError(f"{name} contains a line break or NUL character")
    return value


# answers -------------------------------------------------------------------------


def _provider_messages(body: bytes | str | None) -> str:
    """``errors[].message`` (with ``field`` when given) from a SendGrid error body."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return text.strip()[:300]
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    return "; ".join(_error_text(e) for e in errors if isinstance(e, dict) and e.get("message"))


def _error_text(error: Mapping[str, Any]) -> str:
    field = error.get("field")
    message = str(error["message"])
    return f"{message} (field {field})" if field and field != "null" else message


def _retry_after(headers: Message | Mapping[str, str] | None, now: float) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), else ``Retry-After``, else None."""
    reset = _header(headers, "X-RateLimit-Reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    retry = _header(headers, "Retry-After")
    try:
        return max(0.0, float(retry)) if retry is not None else None
    except ValueError:
        return None


def _header(headers: Message | Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def _describe(exc: object) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _stop_outcome(first: BatchResult) -> Outcome:
    """The unsent half shares the outcome of the request that said stop (401/403, 429, 404).

    Splitting is depth-first, so the last result of the first half is that request's.
    """
    return first.results[-1].outcome


def _stop_detail(first: BatchResult) -> str:
    return f"not sent after a split: {first.results[-1].detail}"


def _combine(first: BatchResult, second: BatchResult) -> BatchResult:
    waits = [w for w in (first.retry_after, second.retry_after) if w is not None]
    return BatchResult(
        first.results + second.results,
        retry_after=max(waits) if waits else None,
        error=first.error or second.error,
    )
