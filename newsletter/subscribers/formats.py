"""Subscriber exports of other newsletter tools: which tool wrote a file, and what each row means.

Each tool names its columns and statuses its own way; a ``Format`` turns one of
its rows into the same ``Disposition``: a subscriber (confirmed or pending,
with the original opt-in time and IP when the tool kept them) or a
suppression (unsubscribed, cleaned, blocklisted), never both.  The format is
detected from the header row; ``--format`` forces one.

Column names and statuses, as the tools write them:

* **Mailchimp** (Audience > Export): one file per status, ``subscribed_…``,
  ``unsubscribed_…`` and ``cleaned_…``: ``Email Address``, ``First Name``,
  ``Last Name``, ``MEMBER_RATING``, ``OPTIN_TIME``, ``OPTIN_IP``,
  ``CONFIRM_TIME``, ``CONFIRM_IP``, …, ``LEID``, ``EUID``, ``NOTES``,
  ``TAGS``; the unsubscribed file adds ``UNSUB_TIME`` (and
  ``UNSUB_CAMPAIGN_TITLE``, ``UNSUB_REASON``…), the cleaned file
  ``CLEAN_TIME``.  A ``Status`` column, where present, says ``subscribed``,
  ``unsubscribed``, ``cleaned`` or ``pending``.
* **Substack** (``email_list.*.csv``): ``email``, ``active_subscription``,
  ``expiry``, ``plan``, ``email_disabled``, ``created_at``,
  ``first_payment_at``; ``email_disabled = true`` means the reader turned
  email off.
* **listmonk** (Subscribers > Export): ``uuid``, ``email``, ``name``,
  ``attributes``, ``status``, ``created_at``, ``updated_at``; status is
  ``enabled``, ``disabled`` or ``blocklisted``.
* **Buttondown** (fields of its subscriber object): ``email`` (or
  ``email_address``), ``creation_date``, ``notes``, ``metadata``, ``tags``,
  ``referrer_url``, ``secondary_id``, ``subscriber_type`` (or ``type``),
  ``source``, ``ip_address``…; types ``regular``, ``premium``, ``trialed``,
  ``gifted``, ``churning``, ``unpaid``, ``paused``, ``unactivated`` (never
  confirmed), ``unsubscribed``, ``removed``, ``undeliverable``, ``spammy``.
* **Ghost** (Members > Export): ``id``, ``email``, ``name``, ``note``,
  ``subscribed_to_emails``, ``complimentary_plan``, ``stripe_customer_id``,
  ``created_at``, ``deleted_at``, ``labels``, ``tiers``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.errors import ValidationError
from newsletter.models.subscribers import SubscriberStatus, SuppressionReason


@dataclass(frozen=True, slots=True)
class Disposition:
    """What one row asks for: a subscriber with ``status``, or a suppression with ``reason``."""

    status: SubscriberStatus | None = None
    reason: SuppressionReason | None = None
    note: str = ""  # the tool's own word for it ("cleaned", "blocklisted")


CONFIRMED = Disposition(status=SubscriberStatus.CONFIRMED)
PENDING = Disposition(status=SubscriberStatus.PENDING)


def _suppress(reason: SuppressionReason, note: str) -> Disposition:
    return Disposition(reason=reason, note=note)


UNSUBSCRIBED = SuppressionReason.UNSUBSCRIBED
CLEANED = SuppressionReason.HARD_BOUNCE  # the address does not exist or bounced for good


def label(header: str) -> str:
    """A header as compared here: lower case, single spaces, ``_`` and ``-`` as spaces."""
    return " ".join(header.strip().lower().replace("_", " ").replace("-", " ").split())


@dataclass(frozen=True)
class Format:
    """One tool's export: how to find it, its columns, and what each row's status means."""

    name: str
    title: str
    columns: dict[str, tuple[str, ...]]  # our field -> the tool's header labels
    detect: Callable[[set[str]], bool]
    disposition: Callable[[dict[str, str], set[str]], Disposition]

    def map_header(self, header: Sequence[str]) -> dict[str, int]:
        """Our field -> column index (the first column of that name wins)."""
        found: dict[str, int] = {}
        for index, raw in enumerate(header):
            name = label(raw)
            for key, names in self.columns.items():
                if name in names and key not in found:
                    found[key] = index
        return found


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"true", "yes", "1", "y", "t"}


# --------------------------------------------------------------------------- ours

NATIVE_COLUMNS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e mail", "email address", "e mail address", "address", "mail"),
    "name": ("name", "full name", "fullname", "display name", "contact name", "subscriber"),
    "first_name": ("first name", "firstname", "given name", "forename"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "topics": ("topics", "topic", "interests", "categories"),
    "status": ("status",),
    "suppressed": ("suppressed", "suppression"),
    "email_hash": ("email hash", "hash"),
    "time_zone": ("time zone", "timezone", "tz"),
}


def _native(cells: dict[str, str], _header: set[str]) -> Disposition:
    raw = cells.get("status", "").strip().lower()
    return PENDING if raw == SubscriberStatus.PENDING else Disposition()  # default decides


NATIVE = Format("native", "this tool's CSV", NATIVE_COLUMNS, lambda _h: True, _native)


# --------------------------------------------------------------------------- Mailchimp

_MAILCHIMP_STATUS = {
    "subscribed": CONFIRMED,
    "pending": PENDING,
    "unsubscribed": _suppress(UNSUBSCRIBED, "unsubscribed"),
    "cleaned": _suppress(CLEANED, "cleaned"),
    "archived": _suppress(UNSUBSCRIBED, "archived"),
    "transactional": _suppress(UNSUBSCRIBED, "transactional (never opted in)"),
}


def _mailchimp(cells: dict[str, str], header: set[str]) -> Disposition:
    status = cells.get("status", "").strip().lower()
    if status:
        return _MAILCHIMP_STATUS.get(status, Disposition(note=status))
    if "clean time" in header:  # cleaned_members_export_*.csv
        return _MAILCHIMP_STATUS["cleaned"]
    if "unsub time" in header:  # unsubscribed_members_export_*.csv
        return _MAILCHIMP_STATUS["unsubscribed"]
    return CONFIRMED  # subscribed_members_export_*.csv


MAILCHIMP = Format(
    "mailchimp",
    "Mailchimp",
    {
        "email": ("email address", "email"),
        "first_name": ("first name",),
        "last_name": ("last name",),
        "topics": ("tags",),
        "status": ("status",),
        "optin_time": ("optin time",),
        "optin_ip": ("optin ip",),
        "confirm_time": ("confirm time",),
        "confirm_ip": ("confirm ip",),
        "ended_at": ("unsub time", "clean time"),
        "time_zone": ("timezone",),
    },
    lambda h: "email address" in h and bool(h & {"optin time", "leid", "euid", "member rating"}),
    _mailchimp,
)


# --------------------------------------------------------------------------- Substack


def _substack(cells: dict[str, str], _header: set[str]) -> Disposition:
    if _truthy(cells.get("email_disabled", "")):
        return _suppress(UNSUBSCRIBED, "email disabled")
    return CONFIRMED


SUBSTACK = Format(
    "substack",
    "Substack",
    {
        "email": ("email",),
        "name": ("name",),
        "optin_time": ("created at",),
        "email_disabled": ("email disabled",),
    },
    lambda h: "email" in h and bool(h & {"active subscription", "email disabled"}),
    _substack,
)


# --------------------------------------------------------------------------- listmonk

_LISTMONK_STATUS = {
    "enabled": CONFIRMED,
    "blocklisted": _suppress(UNSUBSCRIBED, "blocklisted"),
    "disabled": _suppress(SuppressionReason.MANUAL, "disabled"),
}


def _listmonk(cells: dict[str, str], _header: set[str]) -> Disposition:
    status = cells.get("status", "").strip().lower()
    return _LISTMONK_STATUS.get(status, Disposition(note=status))


LISTMONK = Format(
    "listmonk",
    "listmonk",
    {
        "email": ("email",),
        "name": ("name",),
        "status": ("status",),
        "optin_time": ("created at",),
    },
    lambda h: {"uuid", "email", "attributes", "status"} <= h,
    _listmonk,
)


# --------------------------------------------------------------------------- Buttondown

_RECEIVING = ("regular", "premium", "trialed", "gifted", "churning", "unpaid", "paused",
              "past due", "paid")  # fmt: skip
_BUTTONDOWN_STATUS = {
    **dict.fromkeys(_RECEIVING, CONFIRMED),
    "unactivated": PENDING,
    "unsubscribed": _suppress(UNSUBSCRIBED, "unsubscribed"),
    "removed": _suppress(UNSUBSCRIBED, "removed"),
    "churned": _suppress(UNSUBSCRIBED, "churned"),
    "undeliverable": _suppress(CLEANED, "undeliverable"),
    "spammy": _suppress(SuppressionReason.MANUAL, "spammy"),
    "blocked": _suppress(SuppressionReason.MANUAL, "blocked"),
}


def _buttondown(cells: dict[str, str], _header: set[str]) -> Disposition:
    status = label(cells.get("status", ""))
    return _BUTTONDOWN_STATUS.get(status, Disposition(note=status))


BUTTONDOWN = Format(
    "buttondown",
    "Buttondown",
    {
        "email": ("email", "email address"),
        "topics": ("tags",),
        "status": ("subscriber type", "type"),
        "optin_time": ("creation date", "subscription date"),
        "optin_ip": ("ip address",),
    },
    lambda h: (
        bool(h & {"subscriber type", "creation date"}) and bool(h & {"email", "email address"})
    ),
    _buttondown,
)


# --------------------------------------------------------------------------- Ghost


def _ghost(cells: dict[str, str], _header: set[str]) -> Disposition:
    if _truthy(cells.get("subscribed_to_emails", "true") or "true"):
        return CONFIRMED
    return _suppress(UNSUBSCRIBED, "not subscribed to emails")


GHOST = Format(
    "ghost",
    "Ghost",
    {
        "email": ("email",),
        "name": ("name",),
        "topics": ("labels",),
        "optin_time": ("created at",),
        "subscribed_to_emails": ("subscribed to emails",),
    },
    lambda h: "email" in h and "subscribed to emails" in h,
    _ghost,
)


TOOLS = (MAILCHIMP, SUBSTACK, LISTMONK, BUTTONDOWN, GHOST)
FORMATS = {f.name: f for f in (NATIVE, *TOOLS)}
NAMES = ", ".join(FORMATS)


def detect(header: Sequence[str], forced: str | None = None) -> Format:
    """The format a header belongs to (or the one asked for), ours when no tool's fits."""
    if forced:
        chosen = FORMATS.get(forced.strip().lower())
        if chosen is None:
            raise ValidationError(f"unknown import format {forced!r} (use one of {NAMES})")
        return chosen
    labels = {label(h) for h in header}
    return next((f for f in TOOLS if f.detect(labels)), NATIVE)


# --------------------------------------------------------------------------- cell values

_TAG_SPLIT = re.compile(r"[;|,]")


def split_tags(raw: str) -> list[str]:
    """Tags as tools write them: ``"VIP","Blog"`` (Mailchimp), ``a, b`` (Ghost), ``[a, b]``."""
    text = raw.strip().strip("[]")
    return [t.strip().strip("\"'").strip() for t in _TAG_SPLIT.split(text) if t.strip("\"' ")]


# listmonk: Go's Time.String, "2024-01-02 03:04:05.123456789 +0000 UTC"
_GO_TIME = re.compile(r"^(\S+ [\d:]+)(\.\d{1,6})?\d* ([+-]\d{4})(?: \S+)?$")


def parse_time(raw: str) -> datetime | None:
    """An export's timestamp as aware UTC, or ``ValidationError``; naive times are UTC.

    Accepts ISO 8601 (``2024-01-15T10:00:00.000Z``, Ghost, Substack, Buttondown),
    ``2015-03-16 14:40:47`` (Mailchimp, UTC) and Go's
    ``2024-01-02 03:04:05.123456 +0000 UTC`` (listmonk).
    """
    text = raw.strip()
    if not text:
        return None
    go = _GO_TIME.match(text)
    if go:
        text = f"{go.group(1)}{go.group(2) or ''}{go.group(3)}"
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"unreadable date {text[:40]!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
