"""Sending (admins only): schedule or start a campaign, pause, resume, cancel, retry, report.

State changes are the ``campaigns`` functions the CLI uses (conditional
updates, so a double click or a second admin can never start a send twice);
scheduling is ``newsletter.scheduling.admin``; the database is the truth and
workers pick up what is due.  The campaign page polls a small JSON endpoint
every second for its progress bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.admin import reports
from newsletter.admin.access import Admin, admin_router, page
from newsletter.admin.charts import line_chart
from newsletter.errors import (
    DuplicateSendError,
    PreflightError,
    RenderError,
    StateError,
    ValidationError,
)
from newsletter.insights import clickmap
from newsletter.insights.results import SORT_KEYS, issue_results, sort_rows
from newsletter.models import CampaignStatus, DeliveryStatus, Issue, IssueStatus
from newsletter.scheduling import admin as scheduling
from newsletter.scheduling.times import parse_at, parse_date, zone
from newsletter.sending import abtest, campaigns, localtime, service
from newsletter.web.context import Ctx, WebContext

router = admin_router()
Line = Annotated[str, Form(max_length=2_000)]


def _issues(session: Session) -> list[Issue]:
    """Issues worth sending, ready ones first."""
    rows = session.scalars(select(Issue).where(Issue.status != IssueStatus.ARCHIVED))
    return sorted(rows, key=lambda i: (i.status != IssueStatus.READY, -i.number))


def _list_page(
    request: Request, ctx: WebContext, *, status_code: int = 200, error: str | None = None
) -> Response:
    with ctx.db.session() as session:
        return page(
            request, "campaigns/list.html.j2", status_code, error=error,
            rows=reports.campaigns_with_issue(session), issues=_issues(session),
            topics=ctx.topics, schedules=scheduling.listing(session, tz_name=ctx.settings.timezone),
            timezone=ctx.settings.timezone,
        )  # fmt: skip


@router.get("/campaigns")
def campaigns_page(request: Request, ctx: Ctx, identity: Admin) -> Response:
    return _list_page(request, ctx)


@dataclass(frozen=True)
class Plan:
    """What the new-campaign form asked for, carried through the review step unchanged."""

    issue: int
    name: str
    when: str  # "now", "later" or "local" (at a local hour in each subscriber's zone)
    at: str
    topics: list[str]
    local_time: str = ""
    test: TestForm | None = None  # an A/B subject test, when 2 or 3 subject lines were given


@dataclass(frozen=True)
class TestForm:
    """The subject-test part of the form, as typed (checked by ``abtest.make_plan``)."""

    subjects: list[str]
    share: int
    window: str
    metric: str

    def plan(self) -> abtest.TestPlan:
        return abtest.make_plan(
            self.subjects, share_percent=self.share, window=self.window, metric=self.metric
        )

    @classmethod
    def of(cls, subjects: list[str], share: str, window: str, metric: str) -> TestForm | None:
        """None when no subject line was typed; a checked form otherwise."""
        typed = [s.strip() for s in subjects if s.strip()]
        if not typed:
            return None
        if not share.strip().isdigit():
            raise ValidationError("test share must be a whole percent, such as 10")
        form = cls(typed, int(share), window.strip() or "4h", metric)
        form.plan()  # refuse one subject, more than 3, a share too large, a bad window
        return form


@router.post("/campaigns")
def create(
    request: Request, ctx: Ctx, identity: Admin, issue: Line = "", name: Line = "",
    when: Line = "now", at: Line = "", confirmed: Line = "", resend: Line = "",
    topics: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    local_time: Line = "",
    subjects: Annotated[list[str], Form()] = [],  # noqa: B006
    test_share: Line = "10", test_window: Line = "4h", test_metric: Line = "clicks",
) -> Response:  # fmt: skip
    """The form goes to the review step first; the review's button confirms and sends.

    Due now: created and started at once.  Later: a ``scheduled`` row the
    scheduler starts (its checks run again then).
    """
    try:
        campaigns.check_topics(topics, ctx.topics)
        if not issue.isdigit():
            raise ValidationError("choose an issue")
        kind = when if when in ("later", "local") else "now"
        test = TestForm.of(subjects, test_share, test_window, test_metric)
        if test is not None and kind == "local":
            raise ValidationError("a subject test cannot be combined with a local-hour send")
        plan = Plan(int(issue), name.strip(), kind, at, topics, local_time.strip(), test)
        if plan.when == "later":  # a bad or past time is said on the form, before the review
            scheduling.check_future(_moment(ctx, plan), ctx.clock(),
                                    ctx.settings.misfire_grace_seconds)  # fmt: skip
        if plan.when == "local":
            with ctx.db.session() as session:
                _local_due(ctx, session, plan)
        if confirmed != "1":
            return _review_page(request, ctx, plan)
        with ctx.db.session() as session:
            campaign_id = _create(ctx, session, plan, resend=resend == "1")
    except DuplicateSendError as exc:
        return _review_page(request, ctx, plan, status_code=409, error=str(exc))
    except (ValidationError, StateError) as exc:
        return _list_page(request, ctx, status_code=422, error=str(exc))
    if plan.when == "now":
        return _start(request, ctx, campaign_id)
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?done=scheduled", status_code=303)


def _moment(ctx: WebContext, plan: Plan) -> datetime:
    if not plan.at.strip():
        raise ValidationError("choose the date and time to send")
    return parse_at(plan.at.replace("T", " "), ctx.settings.timezone)


def _local_due(ctx: WebContext, session: Session, plan: Plan) -> datetime:
    """When a local-time plan's first zone is due; a bad date, hour or past time is said now."""
    if not plan.at.strip() or not plan.local_time:
        raise ValidationError("choose the date and the local time to arrive at")
    due = localtime.first_release(
        session, parse_date(plan.at), localtime.parse_local(plan.local_time),
        ctx.settings.timezone,
    )  # fmt: skip
    scheduling.check_future(due, ctx.clock(), ctx.settings.misfire_grace_seconds)
    return due


def _create(ctx: WebContext, session: Session, plan: Plan, *, resend: bool) -> int:
    name = plan.name or None
    if plan.when == "local":
        return scheduling.schedule_local(
            session, plan.issue, on=parse_date(plan.at), local_time=plan.local_time,
            default_tz=ctx.settings.timezone, now=ctx.clock(), topics=plan.topics, name=name,
            grace_seconds=ctx.settings.misfire_grace_seconds, resend=resend,
        ).id  # fmt: skip
    test = plan.test.plan() if plan.test else None
    if plan.when == "now":
        return campaigns.create_campaign(
            plan.issue, session=session, topics=plan.topics, name=name, resend=resend,
            subject_test=test, now=ctx.clock(),
        ).id  # fmt: skip
    return scheduling.schedule_issue(
        session, plan.issue, at=_moment(ctx, plan), now=ctx.clock(), topics=plan.topics,
        name=name, grace_seconds=ctx.settings.misfire_grace_seconds, resend=resend,
        subject_test=test,
    ).id  # fmt: skip


def _review_page(
    request: Request, ctx: WebContext, plan: Plan, *, campaign_id: int | None = None,
    status_code: int = 200, error: str | None = None,
) -> Response:  # fmt: skip
    """Subject, preheader, audience and count, preflight, last test, and any earlier send."""
    found = service.review(ctx.db, ctx.settings, plan.issue, plan.topics, now=ctx.clock(),
                           exclude=campaign_id)  # fmt: skip
    return page(
        request, "campaigns/review.html.j2", status_code, review=found, plan=plan,
        campaign_id=campaign_id, error=error, timezone=ctx.settings.timezone,
        sender=f"{ctx.settings.from_name} <{ctx.settings.from_email}>",
    )  # fmt: skip


def _start(request: Request, ctx: WebContext, campaign_id: int) -> Response:
    """Preflight, freeze the audience, set it sending; preflight problems are shown, not raised."""
    try:
        service.start(ctx.db, ctx.settings, campaign_id, now=ctx.clock())
    except PreflightError as exc:
        return _campaign_page(request, ctx, campaign_id, status_code=422,
                              problems=exc.problems)  # fmt: skip
    except StateError as exc:  # a draft issue, or a send to this audience happened meanwhile
        return _campaign_page(request, ctx, campaign_id, status_code=409, error=str(exc))
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?done=started", status_code=303)


# --- one campaign --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsView:
    """How the results tables are sorted and which audience slice they show."""

    sort: str = "position"
    dir: str = "asc"
    topic: str = ""

    @property
    def descending(self) -> bool:
        return self.dir == "desc"

    def link(self, key: str) -> str:
        """The query string a column header's link sorts by (a second press reverses)."""
        again = key == self.sort and not self.descending
        first = "asc" if key in ("position", "label") else "desc"
        direction = ("desc" if again else "asc") if key == self.sort else first
        return urlencode({k: v for k, v in {"sort": key, "dir": direction,
                                            "topic": self.topic}.items() if v})  # fmt: skip

    def aria(self, key: str) -> str:
        if key != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"


def _results(session: Session, campaign_id: int, view: ResultsView) -> dict[str, object]:
    found = issue_results(session, campaign_id=campaign_id)
    topic = view.topic if view.topic in found.topics else None
    order = partial(sort_rows, key=view.sort, descending=view.descending, topic=topic)
    return {"results": found, "links": order(found.links), "resources": order(found.resources),
            "view": ResultsView(view.sort, view.dir, topic or "")}  # fmt: skip


def _campaign_page(
    request: Request, ctx: WebContext, campaign_id: int, *, status_code: int = 200,
    error: str | None = None, problems: list[str] | None = None, q: str = "", state: str = "",
    number: int = 1, view: ResultsView | None = None, map_error: str | None = None,
) -> Response:  # fmt: skip
    with ctx.db.session() as session:
        campaign = campaigns.get_campaign(campaign_id, session=session)
        issue = session.get(Issue, campaign.issue_id)
        report = campaigns.campaign_report(campaign_id, session=session, with_recipients=False)
        results = _results(session, campaign_id, view or ResultsView())
        results["clickmap"] = clickmap.load(ctx.settings, campaign.issue_id)
        results["map_error"] = map_error
        activity = reports.timeline(session, campaign_id)
        rows, pages = reports.recipients(session, campaign_id, q=q, status=state, page=number)
        tz = zone(ctx.settings.timezone)
        earlier = None
        if campaign.status in campaigns.STARTABLE and not campaign.allow_resend:
            earlier = campaigns.earlier_send(
                campaign.issue_id, campaign.topics, session=session, exclude=campaign.id
            )
            earlier = earlier if earlier is not None and earlier.started_at else None
        return page(
            request, "campaigns/detail.html.j2", status_code, campaign=campaign, issue=issue,
            report=report, progress=reports.progress(session, campaign), activity=activity,
            chart=line_chart(activity, tz=tz) if activity else None, rows=rows, pages=pages,
            q=q, state=state, states=[s.value for s in DeliveryStatus], error=error,
            problems=problems or [], timezone=ctx.settings.timezone, already_sent=earlier,
            already_sent_text=campaigns.describe_earlier(earlier) if earlier else "",
            sends_in_process=ctx.sends_in_process, sort_keys=SORT_KEYS, **results,
        )  # fmt: skip


@router.get("/campaigns/{campaign_id:int}")
def campaign_page(
    request: Request, ctx: Ctx, identity: Admin, campaign_id: int,
    q: Annotated[str, Query(max_length=320)] = "", state: Annotated[str, Query(max_length=20)] = "",
    number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
    sort: Annotated[str, Query(max_length=20)] = "position",
    dir: Annotated[str, Query(max_length=4)] = "asc",
    topic: Annotated[str, Query(max_length=100)] = "",
) -> Response:  # fmt: skip
    view = ResultsView(sort if sort in SORT_KEYS else "position",
                       "desc" if dir == "desc" else "asc", topic)  # fmt: skip
    return _campaign_page(request, ctx, campaign_id, q=q, state=state, number=number, view=view)


@router.post("/campaigns/{campaign_id:int}/clickmap")
def draw_clickmap(request: Request, ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    """Lay the issue out in Chromium and store its click map (a few seconds, once per issue)."""
    try:
        with ctx.db.session() as session:
            campaign = campaigns.get_campaign(campaign_id, session=session)
            issue = session.get(Issue, campaign.issue_id)
            assert issue is not None
            clickmap.capture(ctx.settings, issue, session=session)
    except (RenderError, StateError) as exc:
        return _campaign_page(request, ctx, campaign_id, status_code=422, map_error=str(exc))
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?done=clickmap#clickmap-h",
                            status_code=303)  # fmt: skip


@router.get("/campaigns/{campaign_id:int}/clickmap.png")
def clickmap_image(ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    with ctx.db.session() as session:
        issue_id = campaigns.get_campaign(campaign_id, session=session).issue_id
    path = clickmap.image_path(ctx.settings, issue_id)
    if not path.is_file():
        return Response("no click map yet", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/campaigns/{campaign_id:int}/results.csv")
def results_csv(ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    """Every link's and resource's results, overall and per topic (as ``report --csv``)."""
    with ctx.db.session() as session:
        campaigns.get_campaign(campaign_id, session=session)  # 404 for an unknown campaign
        text = issue_results(session, campaign_id=campaign_id).to_csv()
    name = f"campaign-{campaign_id}-results.csv"
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@router.get("/api/campaigns/{campaign_id:int}/progress")
def progress_json(ctx: Ctx, identity: Admin, campaign_id: int) -> JSONResponse:
    """What the progress bar polls every second (401 without a session, 403 for editors)."""
    with ctx.db.session() as session:
        campaign = campaigns.get_campaign(campaign_id, session=session)
        return JSONResponse(reports.progress(session, campaign).as_dict())


def _act(
    request: Request, ctx: WebContext, campaign_id: int, action: Callable[[Session], object],
    done: str,
) -> Response:  # fmt: skip
    try:
        with ctx.db.session() as session:
            action(session)
    except (StateError, ValidationError) as exc:
        return _campaign_page(request, ctx, campaign_id, status_code=409, error=str(exc))
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?done={done}", status_code=303)


def _plan_of(ctx: WebContext, campaign_id: int) -> tuple[Plan, str]:
    with ctx.db.session() as session:
        campaign = campaigns.get_campaign(campaign_id, session=session)
        number = session.get(Issue, campaign.issue_id).number  # type: ignore[union-attr]
        test = abtest.get_test(campaign_id, session=session)
        form = None
        if test is not None:
            window = abtest.describe_window(test.window_seconds)
            form = TestForm(list(test.subjects), test.share_percent, window, test.metric)
        plan = Plan(number, campaign.name, "now", "", list(campaign.topics), test=form)
        return plan, campaign.status


@router.get("/campaigns/{campaign_id:int}/review")
def review_existing(request: Request, ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    """The review step for a draft, scheduled or missed campaign the admin starts now."""
    plan, status = _plan_of(ctx, campaign_id)
    if status not in campaigns.STARTABLE:
        message = f"cannot start campaign #{campaign_id}: it is {status}"
        return _campaign_page(request, ctx, campaign_id, status_code=409, error=message)
    return _review_page(request, ctx, plan, campaign_id=campaign_id)


@router.post("/campaigns/{campaign_id:int}/start")
def start(
    request: Request, ctx: Ctx, identity: Admin, campaign_id: int, confirmed: Line = "",
    resend: Line = "",
) -> Response:  # fmt: skip
    plan, status = _plan_of(ctx, campaign_id)
    if status not in campaigns.STARTABLE:
        message = f"cannot start campaign #{campaign_id}: it is {status}"
        return _campaign_page(request, ctx, campaign_id, status_code=409, error=message)
    if confirmed != "1":
        return _review_page(request, ctx, plan, campaign_id=campaign_id)
    if resend == "1":
        with ctx.db.session() as session:
            campaigns.allow_resend(campaign_id, session=session)
    return _start(request, ctx, campaign_id)


@router.post("/campaigns/{campaign_id:int}/pause")
def pause(request: Request, ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    return _act(request, ctx, campaign_id,
                lambda s: campaigns.pause_campaign(campaign_id, session=s), "paused")  # fmt: skip


@router.post("/campaigns/{campaign_id:int}/resume")
def resume(request: Request, ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    return _act(request, ctx, campaign_id,
                lambda s: campaigns.resume_campaign(campaign_id, session=s), "resumed")  # fmt: skip


@router.post("/campaigns/{campaign_id:int}/cancel")
def cancel(request: Request, ctx: Ctx, identity: Admin, campaign_id: int) -> Response:
    now = ctx.clock()
    return _act(
        request, ctx, campaign_id,
        lambda s: campaigns.cancel_campaign(campaign_id, session=s, now=now), "cancelled",
    )  # fmt: skip


@router.post("/campaigns/{campaign_id:int}/reschedule")
def reschedule(
    request: Request, ctx: Ctx, identity: Admin, campaign_id: int, at: Line = ""
) -> Response:
    def action(session: Session) -> None:
        moment = parse_at(at.replace("T", " "), ctx.settings.timezone)
        scheduling.reschedule(session, campaign_id, at=moment, now=ctx.clock(),
                              grace_seconds=ctx.settings.misfire_grace_seconds)  # fmt: skip

    return _act(request, ctx, campaign_id, action, "scheduled")


@router.post("/campaigns/{campaign_id:int}/retry")
def retry(
    request: Request, ctx: Ctx, identity: Admin, campaign_id: int, include_unknown: Line = ""
) -> Response:
    """Failed recipients again; "maybe sent" (unknown) ones only when the admin ticks the box."""
    now, size = ctx.clock(), ctx.settings.batch_size
    return _act(
        request, ctx, campaign_id,
        lambda s: campaigns.retry_failed(campaign_id, session=s, now=now, batch_size=size,
                                         include_unknown=include_unknown == "1"),
        "retried",
    )  # fmt: skip


@router.post("/schedules/{schedule_id:int}/disable")
def disable_schedule(request: Request, ctx: Ctx, identity: Admin, schedule_id: int) -> Response:
    """Stop a recurring rule (its history stays)."""
    with ctx.db.session() as session:
        scheduling.disable_recurring(session, schedule_id)
    return RedirectResponse("/admin/campaigns?done=saved#schedules", status_code=303)


__all__ = ["CampaignStatus", "router"]
