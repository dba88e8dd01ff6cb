"""Several relays behind one ``Messenger``: weighted shares, failover, and nothing sent twice.

Batches are shared out by weight (smooth weighted round robin, so 3:1 means
three batches, then one, evenly interleaved).  A relay that cannot take mail
is marked down for ``relay_down_seconds`` and the next one takes the rest of
the batch:

* it refused the connection, the greeting, the login or the sender
  (``BatchResult.down``; SMTPMessenger sets it), or reported a transport
  error (``BatchResult.error``: SendGrid's refused key);
* it answered 5xx to every message of a batch of at least ``ALL_REFUSED``;
* (SendGrid) it left the whole batch TEMPORARY (5xx, no connection).

Only recipients the failed relay certainly did not take move on: those left
TEMPORARY before their data was sent, and those it refused with 5xx.  A
recipient it accepted, or whose answer was lost after the data went
(UNKNOWN), stays with that relay's outcome, so no message is sent by two
relays.  All of this happens inside the engine's one ``send`` call, which the
engine committed as ``submitting`` first: a crash here leaves the batch
``unknown``, never resent.  When every relay is down the rest is TEMPORARY
with ``retry_after`` (the first relay's return), or with ``error`` (the
campaign pauses) if every relay needs an admin: wrong credentials do not fix
themselves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from newsletter.bounces.verp import Verp
from newsletter.config import RelaySetting, Settings
from newsletter.errors import ConfigError
from newsletter.transports.base import (
    BatchResult,
    MessageBatch,
    MessageSigner,
    Messenger,
    Outcome,
    Recipient,
    RecipientResult,
)

log = logging.getLogger(__name__)

ALL_REFUSED = 10  # a batch this large refused whole is the relay's fault, not the addresses'
Probe = Callable[[], "str | None"]


@dataclass
class Relay:
    name: str
    weight: int
    messenger: Messenger
    kind: str = "smtp"
    probe: Probe | None = None
    down_until: float = 0.0
    reason: str | None = None
    needs_admin: bool = False
    current: float = 0.0  # smooth weighted round robin state
    batches: int = 0
    accepted: int = 0

    def up(self, now: float) -> bool:
        return self.down_until <= now


@dataclass
class RelayStatus:
    """What the admin page and ``newsletter relays check`` show for one relay."""

    name: str
    kind: str
    weight: int
    where: str
    problem: str | None  # None: the health check passed
    seconds: float


@dataclass
class RelayMessenger:
    relays: list[Relay]
    down_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    name: str = "relays"
    max_batch: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.relays:
            raise ConfigError('transport "relays" needs at least one [[relays]] entry')
        self.max_batch = min(relay.messenger.max_batch for relay in self.relays)

    # --- sending -------------------------------------------------------------

    def send(self, batch: MessageBatch) -> BatchResult:
        settled: dict[str, RecipientResult] = {}
        pending: list[Recipient] = list(batch.recipients)
        used: list[str] = []
        tried: set[str] = set()
        retry_after: float | None = None
        while pending:
            relay = self._pick(tried)
            if relay is None:
                break
            tried.add(relay.name)
            used.append(relay.name)
            result = relay.messenger.send(replace(batch, recipients=pending))
            failure = _failure(relay, result)
            moved = self._settle(relay, result, failure, settled)
            if failure is None:
                retry_after = result.retry_after
                relay.batches += 1
            else:
                self._mark_down(relay, failure, admin=result.error is not None)
            pending = [rcpt for rcpt in pending if rcpt.ref in moved]
        if pending:
            return self._stranded(batch, settled, pending, used)
        results = tuple(settled[rcpt.ref] for rcpt in batch.recipients)
        return BatchResult(results, retry_after=retry_after, relay=" → ".join(used))

    def _settle(
        self,
        relay: Relay,
        result: BatchResult,
        failure: str | None,
        settled: dict[str, RecipientResult],
    ) -> set[str]:
        """Keep what this relay decided; return the refs another relay may still send."""
        moved: set[str] = set()
        for item in result.results:
            movable = item.outcome is Outcome.TEMPORARY or (
                failure is not None and item.outcome is Outcome.PERMANENT
            )
            if failure is not None and movable:
                moved.add(item.ref)
                continue
            if item.outcome is Outcome.ACCEPTED:
                relay.accepted += 1
            settled[item.ref] = replace(item, detail=f"{item.detail} (via {relay.name})")
        return moved

    def _stranded(
        self,
        batch: MessageBatch,
        settled: dict[str, RecipientResult],
        pending: list[Recipient],
        used: list[str],
    ) -> BatchResult:
        """Every relay is down: the rest waits (TEMPORARY), or pauses if an admin must act."""
        now = self.clock()
        reasons = "; ".join(f"{r.name}: {r.reason}" for r in self.relays if not r.up(now))
        detail = f"no relay available ({reasons})"
        for rcpt in pending:
            settled[rcpt.ref] = RecipientResult(rcpt.ref, Outcome.TEMPORARY, detail=detail)
        results = tuple(settled[rcpt.ref] for rcpt in batch.recipients)
        if all(r.needs_admin for r in self.relays):
            return BatchResult(
                results, error=f"every relay is down: {reasons}", relay=_joined(used)
            )
        back = min(r.down_until for r in self.relays) - now
        return BatchResult(results, retry_after=max(1.0, back), relay=_joined(used))

    def _pick(self, tried: set[str]) -> Relay | None:
        """Smooth weighted round robin over relays that are up; standbys (weight 0) last."""
        now = self.clock()
        ready = [r for r in self.relays if r.name not in tried and r.up(now)]
        weighted = [r for r in ready if r.weight > 0]
        if not weighted:
            return ready[0] if ready else None
        total = sum(r.weight for r in weighted)
        for relay in weighted:
            relay.current += relay.weight
        chosen = max(weighted, key=lambda r: r.current)
        chosen.current -= total
        return chosen

    def _mark_down(self, relay: Relay, reason: str, *, admin: bool) -> None:
        relay.down_until = self.clock() + self.down_seconds
        relay.reason, relay.needs_admin = reason, admin
        log.warning("relay %s is down for %.0fs: %s", relay.name, self.down_seconds, reason)

    # --- health ----------------------------------------------------------------

    def check(self) -> list[RelayStatus]:
        """Probe every relay now (connect, greet, log in; SendGrid: the key's scopes)."""
        out: list[RelayStatus] = []
        for relay in self.relays:
            start = time.monotonic()
            problem = relay.probe() if relay.probe else None
            out.append(
                RelayStatus(
                    relay.name, relay.kind, relay.weight, _where(relay.messenger), problem,
                    time.monotonic() - start,
                )
            )  # fmt: skip
            if problem is None and not relay.up(self.clock()):
                relay.down_until, relay.reason = 0.0, None  # healthy again: back in the rotation
        return out

    def close(self) -> None:
        for relay in self.relays:
            relay.messenger.close()


def _joined(used: list[str]) -> str | None:
    return " → ".join(used) or None


def _where(messenger: Messenger) -> str:
    host, port = getattr(messenger, "host", None), getattr(messenger, "port", None)
    if host is None:
        return messenger.name
    return f"{host}:{port}" if port is not None else str(host)


def _failure(relay: Relay, result: BatchResult) -> str | None:
    """Why this relay as a whole failed the batch, or None if it did its job."""
    if result.down or result.error:
        return result.down or result.error
    outcomes = [r.outcome for r in result.results]
    if len(outcomes) >= ALL_REFUSED and all(o is Outcome.PERMANENT for o in outcomes):
        return f"refused every message ({result.results[0].detail})"
    if relay.kind == "sendgrid" and outcomes and all(o is Outcome.TEMPORARY for o in outcomes):
        return f"took none of the batch ({result.results[0].detail})"
    return None


# --- from settings ----------------------------------------------------------------


def build_relays(settings: Settings, signer: MessageSigner | None) -> RelayMessenger:
    relays = [_relay(setting, settings, signer) for setting in settings.relays]
    return RelayMessenger(relays, down_seconds=settings.relay_down_seconds)


def _relay(setting: RelaySetting, settings: Settings, signer: MessageSigner | None) -> Relay:
    if setting.kind == "sendgrid":
        from newsletter.transports.sendgrid import SendGridMessenger

        if setting.api_key is None:
            raise ConfigError(f"relay {setting.name!r} (sendgrid) needs api_key")
        key = setting.api_key.get_secret_value()
        sendgrid = SendGridMessenger(key, host=setting.sendgrid_host)
        return Relay(
            setting.name, setting.weight, sendgrid, "sendgrid",
            probe=lambda: _sendgrid_probe(setting.sendgrid_host, key),
        )  # fmt: skip
    from newsletter.transports.smtp import SMTPMessenger

    password = setting.password.get_secret_value() if setting.password else None
    smtp = SMTPMessenger(
        host=setting.host,
        port=setting.port,
        security=setting.security,
        username=setting.username,
        password=password,
        connections=setting.connections,
        timeout=settings.smtp_timeout_seconds,
        signer=signer,
        envelope_sender=Verp.from_settings(settings),  # bounces name their ledger row
    )
    return Relay(setting.name, setting.weight, smtp, "smtp", probe=smtp.check)


def _sendgrid_probe(host: str, key: str) -> str | None:
    """GET /v3/scopes: 200 means the key works (and says nothing is sent)."""
    import httpx

    try:
        answer = httpx.get(
            f"{host.rstrip('/')}/v3/scopes", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
    except httpx.HTTPError as exc:
        return f"cannot reach {host}: {exc}"
    if answer.status_code in (401, 403):
        return f"{host} refused the API key ({answer.status_code})"
    if answer.status_code >= 400:
        return f"{host} answered {answer.status_code}"
    return None


def relay_statuses(settings: Settings) -> list[RelayStatus]:
    """Health of the configured relays: ``[[relays]]``, or the one SMTP server otherwise."""
    if settings.transport == "relays":
        messenger = build_relays(settings, None)
    else:
        single = RelaySetting(
            name="smtp", host=settings.smtp_host, port=settings.smtp_port,
            security=settings.smtp_security, username=settings.smtp_username,
            password=settings.smtp_password,
        )  # fmt: skip
        messenger = RelayMessenger([_relay(single, settings, None)])
    try:
        return messenger.check()
    finally:
        messenger.close()
