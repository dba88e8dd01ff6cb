"""Subject-line tests: 2 or 3 subjects, each to an equal random share of a sample, then the winner.

How it runs, on the normal ledger (one row per recipient, so no one is ever sent twice):

- ``add_test`` stores the plan with a draft campaign (``subject_tests``).
- When the campaign starts, ``freeze`` draws the sample at random (``share_percent`` of
  the audience for each subject), records each sampled row's subject on the ledger
  (``deliveries.variant``, ``in_sample``) and batches the sample per subject; the
  rest of the audience is batched too, but ``held``: workers never claim those.
- ``decide_due`` (a scheduler step, every tick) picks the winner of each test whose
  window has passed, by unique human clicks or opens (machine ones are already apart
  on the ledger), and releases the held batches with the winner's subject.  The pick
  is a conditional UPDATE on the test row, so two schedulers decide once.
- The preparer asks ``batch_subject`` which subject a batch carries.

The engine knows nothing of this: it claims pending batches as always.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from newsletter.db import Database
from newsletter.errors import ValidationError
from newsletter.message import check_header_value
from newsletter.models.abtest import SubjectTest
from newsletter.models.sending import BatchStatus, Campaign, Delivery, DeliveryStatus, SendBatch

MAX_SUBJECTS = 3
METRICS = ("clicks", "opens")
LABELS = "ABC"
DEFAULT_SHARE = 10
DEFAULT_WINDOW = timedelta(hours=4)
MIN_WINDOW = timedelta(minutes=5)
MAX_WINDOW = timedelta(days=7)
# Below this many clicks (or opens) in the whole sample, or this few for the leader, a
# difference says nothing: the report says "too few to tell" instead of a p-value.
MIN_EVENTS = 10
MIN_LEADER_EVENTS = 5
REACHED = (DeliveryStatus.ACCEPTED, DeliveryStatus.DELIVERED)


# --- the plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPlan:
    subjects: tuple[str, ...]
    share_percent: int = DEFAULT_SHARE
    window: timedelta = DEFAULT_WINDOW
    metric: str = "clicks"


_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}


def parse_window(value: str) -> timedelta:
    """'4h', '90m', '1d', '3600s' (a bare number is hours)."""
    match = _WINDOW.match(value)
    if match is None:
        raise ValidationError(f"test window {value!r} is not a duration like 4h, 90m or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def describe_window(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def make_plan(
    subjects: Sequence[str],
    *,
    share_percent: int = DEFAULT_SHARE,
    window: timedelta | str = DEFAULT_WINDOW,
    metric: str = "clicks",
) -> TestPlan:
    """A checked plan: 2 or 3 distinct one-line subjects, a share that fits, a sane window."""
    cleaned = [s.strip() for s in subjects if s.strip()]
    if len(cleaned) < 2:
        raise ValidationError(
            f"a subject test needs 2 or 3 subject lines, got {len(cleaned)} "
            "(give --subject-variant twice or three times)"
        )
    if len(cleaned) > MAX_SUBJECTS:
        raise ValidationError(
            f"a subject test takes at most {MAX_SUBJECTS} subject lines, got {len(cleaned)}"
        )
    if len({s.casefold() for s in cleaned}) != len(cleaned):
        raise ValidationError("the subject lines of a test must differ from each other")
    for subject in cleaned:
        check_header_value("subject variant", subject)
        if len(subject) > 300:
            raise ValidationError(f"subject variant {subject[:40]!r}... is over 300 characters")
    if metric not in METRICS:
        raise ValidationError(f"test metric must be clicks or opens, not {metric!r}")
    if not 1 <= share_percent <= 100 // len(cleaned):
        raise ValidationError(
            f"test share {share_percent} % for each of {len(cleaned)} subjects: the sample "
            f"would be {share_percent * len(cleaned)} % of the audience; use 1 to "
            f"{100 // len(cleaned)} %"
        )
    span = parse_window(window) if isinstance(window, str) else window
    if not MIN_WINDOW <= span <= MAX_WINDOW:
        raise ValidationError("test window must be between 5 minutes and 7 days")
    return TestPlan(tuple(cleaned), share_percent, span, metric)


def add_test(campaign: Campaign, plan: TestPlan, *, session: Session) -> SubjectTest:
    """Attach a plan to a campaign that has not started (its first subject is the default)."""
    if campaign.started_at is not None:
        raise ValidationError(f"campaign #{campaign.id} has started; its subjects are fixed")
    test = SubjectTest(
        campaign_id=campaign.id,
        subjects=list(plan.subjects),
        share_percent=plan.share_percent,
        window_seconds=int(plan.window.total_seconds()),
        metric=plan.metric,
        sample_size=0,
    )
    session.add(test)
    session.flush()
    return test


def get_test(campaign_id: int, *, session: Session) -> SubjectTest | None:
    return session.get(SubjectTest, campaign_id)


def sample_size(test: SubjectTest | TestPlan, audience: int) -> int:
    """Recipients per subject; refuses a sample the audience cannot fill.

    Each subject gets ``share_percent`` of the audience, at least one
    recipient; all of them together must fit in the audience.
    """
    subjects = len(test.subjects)
    share = test.share_percent
    each = max(1, audience * share // 100)
    if each * subjects > audience:
        raise ValidationError(
            f"the test sample ({subjects} subjects x {each} recipient{'s' * (each != 1)}) "
            f"is larger than the audience ({audience} subscriber{'s' * (audience != 1)})"
        )
    return each


# --- the freeze (inside start_campaign's transaction) --------------------------------

_SPLIT = """
    UPDATE deliveries SET variant = r.v, in_sample = TRUE
    FROM (SELECT id, (row_number() OVER (ORDER BY random()) - 1) / CAST(:k AS INTEGER) + 1 AS v
          FROM deliveries WHERE campaign_id = :cid) AS r
    WHERE deliveries.id = r.id AND r.v <= :n
"""
_NUMBERED = """
    SELECT id AS did, segment AS seg,
           (row_number() OVER (PARTITION BY segment ORDER BY id) - 1) / CAST(:size AS INTEGER)
             AS chunk
    FROM deliveries
    WHERE campaign_id = :cid AND batch_id IS NULL AND status = 'queued' AND {which}
"""
_INSERT_BATCHES = """
    INSERT INTO send_batches (campaign_id, seq, segment, chunk, status, size, attempts, variant)
    SELECT :cid, CAST(:offset AS INTEGER) + row_number() OVER (ORDER BY seg, chunk),
           seg, chunk, :status, count(*), 0, {variant}
    FROM ({numbered}) AS n
    GROUP BY seg, chunk
"""
_ASSIGN_BATCHES = """
    UPDATE deliveries SET batch_id = b.id
    FROM ({numbered}) AS n, send_batches AS b
    WHERE deliveries.id = n.did AND b.campaign_id = :cid AND b.segment = n.seg
      AND b.chunk = n.chunk AND b.seq > :offset
"""


def freeze(
    campaign_id: int, *, session: Session, total: int, batch_size: int, now: datetime
) -> int:
    """Draw the sample from the just-written (unbatched) ledger and batch it; per-subject size.

    Raises ``ValidationError`` when the audience cannot fill the sample: the
    caller's transaction then rolls back and the campaign stays unstarted.
    """
    test = get_test(campaign_id, session=session)
    assert test is not None
    each = sample_size(test, total)
    session.execute(text(_SPLIT), {"cid": campaign_id, "k": each, "n": len(test.subjects)})
    assign_batches(campaign_id, session=session, size=batch_size)
    test.sample_size = each
    test.decide_at = now + timedelta(seconds=test.window_seconds)
    session.flush()
    return each


def assign_batches(campaign_id: int, *, session: Session, size: int) -> int:
    """Batch unbatched queued rows, one subject per batch; the undecided rest is ``held``.

    Used by the freeze and by ``retry-failed`` (a retried sample recipient keeps
    their subject).  Returns how many batches were made.
    """
    variants = session.scalars(
        select(Delivery.variant)
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.batch_id.is_(None),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .distinct()
    ).all()
    made = 0
    for variant in sorted(variants, key=lambda v: (v is None, v or 0)):
        made += _batch_variant(campaign_id, variant, session=session, size=size)
    return made


def _batch_variant(campaign_id: int, variant: int | None, *, session: Session, size: int) -> int:
    which = "variant IS NULL" if variant is None else "variant = :v"
    numbered = _NUMBERED.format(which=which)
    offset = session.scalar(
        select(func.coalesce(func.max(SendBatch.seq), 0)).where(
            SendBatch.campaign_id == campaign_id
        )
    )
    params: dict[str, Any] = {
        "cid": campaign_id, "size": size, "offset": int(offset or 0), "v": variant,
        "status": BatchStatus.HELD if variant is None else BatchStatus.PENDING,
    }  # fmt: skip
    column = "NULL" if variant is None else "CAST(:v AS SMALLINT)"
    insert = _INSERT_BATCHES.format(numbered=numbered, variant=column)
    created: Any = session.execute(text(insert), params)
    session.execute(text(_ASSIGN_BATCHES.format(numbered=numbered)), params)
    return int(created.rowcount or 0)


# --- what the preparer asks -------------------------------------------------------------


def campaign_subjects(campaign_id: int, *, session: Session) -> list[str] | None:
    """The test's subjects (variant n is item n - 1), or None for a campaign without a test."""
    subjects = session.scalar(
        select(SubjectTest.subjects).where(SubjectTest.campaign_id == campaign_id)
    )
    return list(subjects) if subjects else None


def batch_variant(batch_id: int, *, session: Session) -> int | None:
    return session.scalar(select(SendBatch.variant).where(SendBatch.id == batch_id))


# --- results and the winner -------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    variant: int
    label: str
    subject: str
    sample: int  # recipients drawn for this subject
    reached: int  # of them accepted or delivered (the rate's denominator)
    opened: int  # unique human openers
    clicked: int  # unique human clickers
    metric: str

    @property
    def successes(self) -> int:
        return self.clicked if self.metric == "clicks" else self.opened

    @property
    def rate(self) -> float:
        return self.successes / self.reached if self.reached else 0.0


def results(test: SubjectTest, *, session: Session) -> list[VariantResult]:
    """Each subject's sample, reach and unique human openers and clickers, from the ledger."""
    d = Delivery
    rows = session.execute(
        select(
            d.variant,
            func.count(),
            func.count().filter(d.status.in_(REACHED)),
            func.count(d.opened_at),
            func.count(d.clicked_at),
        )
        .where(d.campaign_id == test.campaign_id, d.in_sample.is_(True))
        .group_by(d.variant)
    ).all()
    found = {int(v): (int(n), int(r), int(o), int(c)) for v, n, r, o, c in rows if v is not None}
    out = []
    for index, subject in enumerate(test.subjects, start=1):
        n, r, o, c = found.get(index, (0, 0, 0, 0))
        out.append(VariantResult(index, LABELS[index - 1], subject, n, r, o, c, test.metric))
    return out


def _p_value(a: VariantResult, b: VariantResult) -> float:
    """Two-sided two-proportion z-test of a's rate against b's."""
    pooled = (a.successes + b.successes) / (a.reached + b.reached)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a.reached + 1 / b.reached))
    if spread == 0:
        return 1.0
    z = (a.rate - b.rate) / spread
    return math.erfc(abs(z) / math.sqrt(2))


def ranked(found: Sequence[VariantResult]) -> list[VariantResult]:
    """Best first; a tie goes to the earlier subject (the editor's first choice)."""
    return sorted(found, key=lambda r: (-r.rate, -r.successes, r.variant))


def confidence(found: Sequence[VariantResult]) -> str:
    """How sure the result is, in plain words (a two-proportion z-test, leader vs runner-up)."""
    if not found:
        return ""
    noun = found[0].metric
    if not all(r.reached for r in found):
        return "Nothing to compare yet: the sample has not all been sent."
    best, second = ranked(found)[:2]
    total = sum(r.successes for r in found)
    if total < MIN_EVENTS or best.successes < MIN_LEADER_EVENTS:
        return f"Too few {noun} to tell ({total} in the whole sample): any lead may be chance."
    p = _p_value(best, second)
    lead = f'"{best.subject}" ({best.rate:.1%}) against "{second.subject}" ({second.rate:.1%})'
    if p < 0.01:
        return f"Very likely a real difference: {lead}; p = {p:.3f}."
    if p < 0.05:
        return f"Probably a real difference: {lead}; p = {p:.3f}."
    return f"No clear difference: {lead}; p = {p:.2f}, so the lead may well be chance."


def pick(found: Sequence[VariantResult]) -> tuple[int, str]:
    """The winning variant and why, in a sentence for the report."""
    order = ranked(found)
    best = order[0]
    noun = best.metric
    tied = [r for r in order if r.rate == best.rate and r.successes == best.successes]
    if len(tied) > 1:
        return best.variant, (
            f"{best.label} kept: the subjects tied at {best.rate:.1%} unique {noun}; "
            "the first subject wins a tie. " + confidence(found)
        )
    return best.variant, (
        f"{best.label} won with {best.rate:.1%} unique human {noun} "
        f"({best.successes} of {best.reached}). " + confidence(found)
    )


@dataclass(frozen=True)
class Decision:
    campaign_id: int
    winner: int
    subject: str
    note: str
    released: int  # held batches now pending


def decide(
    campaign_id: int, *, session: Session, now: datetime, force: bool = False
) -> Decision | None:
    """Pick the winner once the window has passed (or now, with ``force``); release the rest.

    The conditional UPDATE on the test row is the gate: of two schedulers (or an
    admin and a scheduler) exactly one sets the winner; the other changes nothing.
    The rest of the audience then gets the winner's subject on its ledger rows
    and its batches become pending, in the same transaction.
    """
    test = get_test(campaign_id, session=session)
    if test is None or test.winner is not None or test.decide_at is None:
        return None
    if not force and test.decide_at > now:
        return None
    winner, note = pick(results(test, session=session))
    won = session.execute(
        update(SubjectTest)
        .where(SubjectTest.campaign_id == campaign_id, SubjectTest.winner.is_(None))
        .values(winner=winner, decided_at=now, note=note)
    )
    if not getattr(won, "rowcount", 0):
        return None
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.in_sample.is_(False))
        .values(variant=winner)
    )
    released = session.execute(
        update(SendBatch)
        .where(SendBatch.campaign_id == campaign_id, SendBatch.status == BatchStatus.HELD)
        .values(status=BatchStatus.PENDING, variant=winner)
    )
    subjects = list(test.subjects)
    return Decision(
        campaign_id, winner, subjects[winner - 1], note, int(getattr(released, "rowcount", 0))
    )


def due(*, session: Session, now: datetime) -> list[int]:
    """Campaigns whose test window has passed and whose winner is not picked yet."""
    return list(
        session.scalars(
            select(SubjectTest.campaign_id)
            .where(SubjectTest.winner.is_(None), SubjectTest.decide_at <= now)
            .order_by(SubjectTest.decide_at)
        )
    )


def decide_due(db: Database, now: datetime) -> list[Decision]:
    """The scheduler step: decide every test that is due, each in its own transaction."""
    with db.session() as session:
        ids = due(session=session, now=now)
    decisions = []
    for campaign_id in ids:
        with db.session() as session:
            decision = decide(campaign_id, session=session, now=now)
        if decision is not None:
            decisions.append(decision)
    return decisions


def waiting_for_winner(campaign_id: int, *, session: Session) -> bool:
    """Whether all a campaign has left to send is its test's held rest (nothing to claim)."""
    states = (BatchStatus.PENDING, BatchStatus.CLAIMED, BatchStatus.SUBMITTING)
    open_batches = session.scalar(
        select(func.count()).where(
            SendBatch.campaign_id == campaign_id, SendBatch.status.in_(states)
        )
    )
    held = session.scalar(
        select(func.count()).where(
            SendBatch.campaign_id == campaign_id, SendBatch.status == BatchStatus.HELD
        )
    )
    return not open_batches and bool(held)


def next_decision(*, session: Session, now: datetime, limit: int) -> list[tuple[int, datetime]]:
    """Future decision times, for the scheduler's wake-up jobs."""
    rows = session.execute(
        select(SubjectTest.campaign_id, SubjectTest.decide_at)
        .where(SubjectTest.winner.is_(None), SubjectTest.decide_at > now)
        .order_by(SubjectTest.decide_at)
        .limit(limit)
    ).all()
    return [(int(cid), at) for cid, at in rows if at is not None]


# --- the report --------------------------------------------------------------------------


def report(campaign_id: int, *, session: Session) -> dict[str, Any] | None:
    """The test as the campaign report shows it (CLI, --json, admin); None without a test."""
    test = get_test(campaign_id, session=session)
    if test is None:
        return None
    found = results(test, session=session)
    rest = session.execute(
        select(func.count(), func.count().filter(Delivery.status.in_(REACHED))).where(
            Delivery.campaign_id == campaign_id, Delivery.in_sample.is_(False)
        )
    ).one()
    subjects = list(test.subjects)
    variants = []
    for r in found:
        row = asdict(r)
        row.update(rate=round(r.rate, 4), winner=test.winner == r.variant)
        variants.append(row)
    return {
        "metric": test.metric,
        "share_percent": test.share_percent,
        "window": describe_window(test.window_seconds),
        "sample_size": test.sample_size,
        "decide_at": test.decide_at.isoformat() if test.decide_at else None,
        "decided_at": test.decided_at.isoformat() if test.decided_at else None,
        "winner": test.winner,
        "winner_subject": subjects[test.winner - 1] if test.winner else None,
        "decision": test.note,
        "confidence": confidence(found) if test.decide_at else "",
        "variants": variants,
        "rest": {"recipients": int(rest[0]), "reached": int(rest[1])},
    }
