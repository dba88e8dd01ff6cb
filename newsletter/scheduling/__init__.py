"""Scheduled and recurring sends.

``steps`` holds the truth-keeping, idempotent work (``start_due_campaigns``,
``materialise_recurring``); ``runner`` wraps it in an APScheduler process with
leader election (``leader``) and an in-process worker; ``admin`` is what the
CLI does to schedules; ``rules`` and ``times`` turn what admins type into UTC
instants, DST included.
"""

from newsletter.scheduling.admin import (
    add_recurring,
    cancel_scheduled,
    disable_recurring,
    listing,
    reschedule,
    schedule_issue,
)
from newsletter.scheduling.rules import latest_at_or_before, load_rule, next_after, parse_rule
from newsletter.scheduling.runner import RunOptions, SchedulerRuntime
from newsletter.scheduling.steps import (
    DueReport,
    RunReport,
    Starter,
    materialise_recurring,
    next_ready_issue,
    start_due_campaigns,
    tick,
)
from newsletter.scheduling.times import local_to_utc, parse_at, zone

__all__ = [
    "DueReport",
    "RunOptions",
    "RunReport",
    "SchedulerRuntime",
    "Starter",
    "add_recurring",
    "cancel_scheduled",
    "disable_recurring",
    "latest_at_or_before",
    "listing",
    "load_rule",
    "local_to_utc",
    "materialise_recurring",
    "next_after",
    "next_ready_issue",
    "parse_at",
    "parse_rule",
    "reschedule",
    "schedule_issue",
    "start_due_campaigns",
    "tick",
    "zone",
]
