"""The one email a pending address may receive: the double opt-in confirmation.

A sign-up for an address that is already confirmed gets an "already
subscribed" note with a preferences link instead, from the same templates, so
the person who owns the mailbox learns what happened while the requester learns
nothing.  The name goes in as the ``%%name%%`` placeholder, so ``Template``
escapes it and checks it for header injection like any recipient value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from newsletter import transports
from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.message import RenderedEmail, Template
from newsletter.models.subscribers import Subscriber
from newsletter.subscribers.links import confirm_url, preferences_url
from newsletter.transports import BatchResult, MessageBatch, Messenger, Outcome, Recipient

log = logging.getLogger(__name__)
DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "email"
KINDS = ("confirm", "already")


@dataclass(frozen=True, slots=True)
class Addressee:
    """What sending needs from a subscriber, detached from the (closed) session."""

    id: int
    email: str
    email_hash: str
    name: str | None

    @classmethod
    def of(cls, row: Subscriber) -> Addressee:
        return cls(id=row.id, email=row.email, email_hash=row.email_hash, name=row.name)


def _search_path(template_dir: Path | None) -> list[str]:
    """A deployment's ``template_dir`` first (holding ``email/`` or the files), then ours."""
    folders: list[Path] = []
    if template_dir is not None:
        nested = template_dir / "email"
        folders.append(nested if nested.is_dir() else template_dir)
    folders.append(DEFAULT_TEMPLATES)
    return [str(f) for f in folders]


@lru_cache(maxsize=8)
def _environment(template_dir: Path | None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_search_path(template_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def subject(settings: Settings, kind: str) -> str:
    if kind == "already":
        return f"You're already subscribed to {settings.organisation} updates"
    return f"Please confirm your subscription to {settings.organisation} updates"


def render(settings: Settings, addressee: Addressee, kind: str) -> RenderedEmail:
    """The confirmation (``kind="confirm"``) or already-subscribed note, both parts."""
    if kind not in KINDS:
        raise ValueError(f"unknown confirmation kind {kind!r}")
    context = {
        "kind": kind,
        "has_name": bool(addressee.name),
        "organisation": settings.organisation,
        "postal_address": settings.postal_address,
        "confirm_url": confirm_url(settings, addressee) if kind == "confirm" else "",
        "preferences_url": preferences_url(settings, addressee),
        "max_age_days": settings.confirm_token_max_age_days,
        "subject": subject(settings, kind),
    }
    env = _environment(settings.template_dir)
    try:
        text = env.get_template("confirm.txt.j2").render(context)
        html = env.get_template("confirm.html.j2").render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(str(exc), where=getattr(exc, "filename", None) or "confirm") from None
    return RenderedEmail(subject=subject(settings, kind), html=html, text=text)


def send(settings: Settings, messenger: Messenger, addressee: Addressee, kind: str) -> bool:
    """Render and send one confirmation; ``True`` if the transport accepted it.

    Failures are logged, not raised: this runs after the response has gone, and
    the person can simply ask again (after the one-hour limit).
    """
    batch = MessageBatch(
        template=Template.compile(render(settings, addressee, kind)),
        sender=transports.sender_from(settings),
        recipients=[
            Recipient(
                ref=f"confirm-{addressee.id}",
                email=addressee.email,
                values={"name": addressee.name or ""},
            )
        ],
    )
    result: BatchResult = messenger.send(batch)
    accepted = bool(result.results) and result.results[0].outcome is Outcome.ACCEPTED
    if not accepted:
        detail = result.error or (result.results[0].detail if result.results else "no result")
        log.warning("confirmation email %s not accepted: %s", batch.recipients[0].ref, detail)
    return accepted
