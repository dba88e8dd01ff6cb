"""From a claimed batch to a ``MessageBatch``: one render per segment, cheap values per recipient.

This is the service layer between the engine and the rest of the package: it
may read the database (once per issue, cached), render (once per issue and
segment, cached) and sign links (once per recipient, a few microseconds).
"""

from __future__ import annotations

import hmac
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.errors import PreflightError
from newsletter.message import Template, placeholder
from newsletter.models.subscribers import Subscriber
from newsletter.render import IssueContent, Renderer, render_issue, render_web_version
from newsletter.render.segments import select_sections
from newsletter.sending import abtest
from newsletter.sending.types import Addressee, ClaimedBatch
from newsletter.subscribers.tokens import HASH_PREFIX, Purpose, Tokens, tokens_for
from newsletter.tracking.links import LinkKey, issue_links, track
from newsletter.tracking.linkstore import ensure_links
from newsletter.tracking.personal import TrackedLinks
from newsletter.tracking.tokens import LinkSigner
from newsletter.transports import sender_from
from newsletter.transports.base import MessageBatch, Recipient, Sender

OPT_OUT_TTL_SECONDS = 60.0


class _Bearer(NamedTuple):
    id: int
    email_hash: str


_Values = Callable[[Addressee], dict[str, str]]


class _LinkTokens:
    """``Tokens.make`` for one purpose, byte for byte, at a fraction of the cost.

    A token is stock itsdangerous ``URLSafeSerializer`` output:
    ``b64(json([id, hash prefix])) "." b64(HMAC(derived key, that))``.  Here the
    JSON is formatted directly (an int and a plain hex string need no escaping)
    and the HMAC is copied from a pre-keyed prototype, instead of going through
    the serializer's layers for each of a million recipients.  It proves
    itself against ``Tokens.make`` on a probe when built; a bearer it cannot
    format exactly, or a failed probe, goes through ``Tokens.make``.
    """

    def __init__(self, tokens: Tokens, secret: str, purpose: Purpose) -> None:
        self.tokens = tokens
        self.purpose = purpose
        signer = URLSafeSerializer(secret, salt=f"newsletter.{purpose}").make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep = signer.sep
        probe = _Bearer(2**40 + 7, "0123456789abcdef" * 4)
        self.fast = self._format(probe.id, probe.email_hash[:HASH_PREFIX]) == tokens.make(
            purpose, probe
        )

    def make(self, subscriber_id: int, email_hash: str) -> str:
        prefix = email_hash[:HASH_PREFIX]
        if self.fast and type(subscriber_id) is int and prefix.isascii() and prefix.isalnum():
            return self._format(subscriber_id, prefix)
        return self.tokens.make(self.purpose, _Bearer(subscriber_id, email_hash))

    def _format(self, subscriber_id: int, prefix: str) -> str:
        payload = urlsafe_b64encode(f'[{subscriber_id},"{prefix}"]'.encode()).rstrip(b"=")
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode()


def web_url(settings: Settings, issue: IssueContent) -> str:
    return f"{settings.base_url.rstrip('/')}/archive/{issue.number}"


def issue_topics(issue: IssueContent) -> list[str]:
    """Every topic a section could be chosen by: the segment universe for this issue."""
    names = {t for s in issue.sections for t in s.topics}
    names |= {t for item in issue.items for t in item.topics}
    return sorted(names)


@dataclass
class IssuePreparer:
    """Implements ``campaigns.IssueChecks`` and the engine's ``Preparer``."""

    db: Database
    settings: Settings
    sender: Sender
    renderer: Renderer = field(default_factory=Renderer)
    clock: Callable[[], float] = time.monotonic
    _content: dict[int, IssueContent] = field(default_factory=dict)
    _templates: dict[tuple[int, frozenset[str], bool, str | None], Template] = field(
        default_factory=dict
    )
    _subjects: dict[int, list[str] | None] = field(default_factory=dict)  # A/B, per campaign
    _links: dict[Purpose, _LinkTokens] = field(default_factory=dict)
    _tracked: dict[int, tuple[dict[LinkKey, int], TrackedLinks]] = field(default_factory=dict)
    _opted_out: tuple[float, frozenset[int]] | None = None

    def content(self, issue_id: int) -> IssueContent:
        if issue_id not in self._content:
            from newsletter.issues.store import content_for_id

            with self.db.session() as session:
                self._content[issue_id] = content_for_id(issue_id, session=session)
        return self._content[issue_id]

    # --- IssueChecks ------------------------------------------------------------

    def topic_universe(self, issue_id: int) -> list[str]:
        return issue_topics(self.content(issue_id))

    def preflight(self, issue_id: int) -> None:
        from newsletter.issues.preflight import preflight

        rendered = render_issue(
            self.content(issue_id), None, theme=self.settings, renderer=self.renderer
        )
        problems = preflight(rendered)
        if problems:
            raise PreflightError(problems, where=f"issue {self.content(issue_id).number}")

    # --- Preparer ---------------------------------------------------------------

    def template(
        self,
        issue_id: int,
        segment: frozenset[str],
        *,
        tracked: bool = True,
        subject: str | None = None,
    ) -> Template:
        """The segment's template; a campaign's has its links tracked (test sends never).

        ``subject`` replaces the issue's (a subject test's variant for this batch).
        """
        tracked = tracked and self.settings.tracking
        key = (issue_id, segment, tracked, subject)
        if key not in self._templates:
            content = self.content(issue_id)
            rendered = render_issue(
                content, segment or None, theme=self.settings, renderer=self.renderer
            )
            if subject is not None:
                rendered = replace(rendered, subject=subject)
            if tracked:
                positions, _links = self.tracked_links(issue_id)
                rendered = track(
                    rendered, sections=select_sections(content, segment or None),
                    positions=positions, resolve=self._resolve(content),
                    pixel=self.settings.track_opens,
                )  # fmt: skip
            self._templates[key] = Template.compile(rendered)
        return self._templates[key]

    # --- tracking ---------------------------------------------------------------

    def _resolve(self, issue: IssueContent) -> dict[str, str]:
        """Placeholders whose value is the same for everyone, as the URLs links store."""
        return {placeholder("web_url", html=True): web_url(self.settings, issue)}

    def tracked_links(self, issue_id: int) -> tuple[dict[LinkKey, int], TrackedLinks]:
        """The issue's links stored once (``issue_links``) and their per-recipient signer."""
        if issue_id not in self._tracked:
            content = self.content(issue_id)
            full = render_issue(content, None, theme=self.settings, renderer=self.renderer)
            specs = issue_links(full, content, resolve=self._resolve(content))
            with self.db.session() as session:
                positions = ensure_links(issue_id, specs, session=session)
            urls = {position: key.url for key, position in positions.items()}
            links = TrackedLinks(
                issue_id=issue_id, urls=urls, base_url=self.settings.base_url,
                signer=LinkSigner(self.settings.keyring.verifying),
                opens=self.settings.track_opens,
            )  # fmt: skip
            self._tracked[issue_id] = (positions, links)
        return self._tracked[issue_id]

    def opted_out(self) -> frozenset[int]:
        """Subscribers who turned tracking off; re-read once a minute (not once per batch)."""
        now = self.clock()
        if self._opted_out is None or now - self._opted_out[0] > OPT_OUT_TTL_SECONDS:
            with self.db.session() as session:
                ids = session.scalars(select(Subscriber.id).where(Subscriber.tracking.is_(False)))
                self._opted_out = (now, frozenset(ids))
        return self._opted_out[1]

    def web_version(self, issue_id: int) -> str:
        return render_web_version(
            self.content(issue_id), theme=self.settings, renderer=self.renderer
        )

    def _link(self, purpose: Purpose) -> _LinkTokens:
        if purpose not in self._links:
            secret = self.settings.keyring.current
            self._links[purpose] = _LinkTokens(tokens_for(self.settings), secret, purpose)
        return self._links[purpose]

    def values(self, addressee: Addressee, issue: IssueContent) -> dict[str, str]:
        return self._values_for(issue)(addressee)

    def _values_for(self, issue: IssueContent) -> _Values:
        """The per-recipient values function for one issue, its constant parts worked out once."""
        base = self.settings.base_url.rstrip("/")
        web = web_url(self.settings, issue)
        unsubscribe = self._link(Purpose.UNSUBSCRIBE).make
        preferences = self._link(Purpose.PREFERENCES).make

        def values(a: Addressee) -> dict[str, str]:
            return {
                "name": a.name or "",
                "email": a.email,
                "unsubscribe_url": f"{base}/u/{unsubscribe(a.subscriber_id, a.email_hash)}",
                "preferences_url": (
                    f"{base}/preferences/{preferences(a.subscriber_id, a.email_hash)}"
                ),
                "web_url": web,
            }

        return values

    def _with_tracking(self, plain: _Values, issue_id: int) -> _Values:
        """``plain`` plus each link's signed URL and the pixel, or the untracked values."""
        _positions, links = self.tracked_links(issue_id)
        opted_out = self.opted_out()
        untracked = links.untracked()

        def values(a: Addressee) -> dict[str, str]:
            extra = untracked if a.subscriber_id in opted_out else links.values(a.delivery_id)
            return {**plain(a), **extra}

        return values

    def subject_for(self, batch: ClaimedBatch) -> str | None:
        """A subject test's variant for this batch, or None: the issue's own subject.

        Whether a campaign has a test is read once per campaign; only a tested
        campaign's batches cost a look-up each (their subject can change when the
        winner is picked).
        """
        if self.db is None:  # offline (benchmarks): no tests
            return None
        if batch.campaign_id not in self._subjects:
            with self.db.session() as session:
                found = abtest.campaign_subjects(batch.campaign_id, session=session)
            self._subjects[batch.campaign_id] = found
        subjects = self._subjects[batch.campaign_id]
        if not subjects:
            return None
        with self.db.session() as session:
            variant = abtest.batch_variant(batch.id, session=session)
        return subjects[variant - 1] if variant and variant <= len(subjects) else None

    def __call__(self, batch: ClaimedBatch) -> MessageBatch:
        values = self._values_for(self.content(batch.issue_id))
        if self.settings.tracking:
            values = self._with_tracking(values, batch.issue_id)
        recipients = [
            Recipient(ref=str(a.delivery_id), email=a.email, values=values(a))
            for a in batch.recipients
        ]
        return MessageBatch(
            template=self.template(batch.issue_id, batch.segment, subject=self.subject_for(batch)),
            sender=self.sender,
            recipients=recipients,
            custom_args={"campaign_id": str(batch.campaign_id)},
        )


def offline_preparer(settings: Settings, content: IssueContent, issue_id: int = 1) -> IssuePreparer:
    """A preparer with no database, its issue and tracked links primed in memory (benchmarks).

    The send floors measure the per-recipient work of a real campaign, tracked
    links included, so the links a worker would store in ``issue_links`` are
    worked out the same way, from the whole issue's render.
    """
    preparer = IssuePreparer(db=None, settings=settings, sender=sender_from(settings))  # type: ignore[arg-type]
    preparer._content[issue_id] = content
    full = render_issue(content, None, theme=settings, renderer=preparer.renderer)
    specs = issue_links(full, content, resolve=preparer._resolve(content))
    links = TrackedLinks(
        issue_id=issue_id, urls={s.position: s.key.url for s in specs},
        base_url=settings.base_url, signer=LinkSigner(settings.keyring.verifying),
        opens=settings.track_opens,
    )  # fmt: skip
    preparer._tracked[issue_id] = ({s.key: s.position for s in specs}, links)
    preparer._opted_out = (float("inf"), frozenset())
    return preparer
