"""The public pages: subscribe, confirm, preference centre, unsubscribe.

Nothing changes on a GET: mail scanners and link previewers fetch every URL
in an email, so confirm and unsubscribe links open a page with a button, and
only the button's POST acts.  The unsubscribe URL doubles as the RFC 8058
one-click endpoint: a POST with ``List-Unsubscribe=One-Click`` (urlencoded or
multipart), no cookies, answered 200 without a redirect, any number of times.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response

from newsletter.errors import ValidationError
from newsletter.models.subscribers import SubscriberStatus
from newsletter.subscribers import links
from newsletter.subscribers.service import CONSENT_TEXT
from newsletter.web import flows
from newsletter.web.context import Client, Ctx
from newsletter.web.security import SIGNUP_CSP
from newsletter.web.templating import page

router = APIRouter(include_in_schema=False)
FORM_SOURCE = "web:subscribe-form"


@router.get("/")
def home() -> RedirectResponse:
    """Until the public archive exists, the home page is the sign-up form."""
    return RedirectResponse("/subscribe", status_code=307)


def _subscribe_page(
    request: Request,
    ctx: Ctx,
    *,
    status_code: int = 200,
    error: str | None = None,
    email: str = "",
    name: str = "",
    chosen: list[str] | None = None,
) -> Response:
    answer = page(
        request, "subscribe.html.j2", status_code, consent_text=CONSENT_TEXT, topics=ctx.topics,
        chosen=ctx.topics if chosen is None else chosen, error=error, email=email, name=name,
    )  # fmt: skip
    answer.headers["content-security-policy"] = SIGNUP_CSP  # its time zone script
    return answer


@router.get("/subscribe")
def subscribe_form(request: Request, ctx: Ctx) -> Response:
    return _subscribe_page(request, ctx)


@router.post("/subscribe")
def subscribe(
    request: Request,
    ctx: Ctx,
    background: BackgroundTasks,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    topics: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    website: Annotated[str, Form()] = "",
    time_zone: Annotated[str, Form()] = "",  # filled by /static/timezone.js
) -> Response:
    """Sign up; the answer is the same for every valid address (see ``flows.subscribe``)."""
    form = flows.SignupInput(
        email=email, name=name, topics=topics, honeypot=website, time_zone=time_zone
    )
    try:
        shown = flows.subscribe(ctx, form, Client.of(request), background, source=FORM_SOURCE)
    except ValidationError as exc:
        return _subscribe_page(
            request, ctx, status_code=422, error=exc.message, email=email, name=name, chosen=topics
        )
    return page(request, "check_inbox.html.j2", email=shown)


@router.get("/confirm/{token}")
def confirm_page(request: Request, ctx: Ctx, token: str) -> Response:
    status = flows.check_confirm(ctx, token)
    return page(request, "confirm.html.j2", token=token, status=status)


@router.post("/confirm/{token}")
def confirm(request: Request, ctx: Ctx, token: str) -> Response:
    prefs_token = flows.confirm(ctx, token, Client.of(request), source="web:confirm")
    return page(request, "confirmed.html.j2", preferences_token=prefs_token)


@router.get("/preferences/{token}")
def preferences_page(request: Request, ctx: Ctx, token: str, saved: bool = False) -> Response:
    prefs = flows.preferences(ctx, token)
    return page(
        request, "preferences.html.j2", token=token, prefs=prefs, saved=saved, error=None,
        pause_choices=flows.PAUSE_CHOICES, active=prefs.status == SubscriberStatus.CONFIRMED,
    )  # fmt: skip


@router.post("/preferences/{token}")
def save_preferences(
    request: Request,
    ctx: Ctx,
    token: str,
    topics: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    pause: Annotated[str, Form()] = "keep",
    tracking: Annotated[str, Form()] = "",
    tracking_shown: Annotated[str, Form()] = "",
) -> Response:
    """Save, then redirect to the page (POST/redirect/GET: a reload does not resubmit).

    An unticked checkbox sends nothing, so the form says it showed the tracking
    box (``tracking_shown``); without it the reader's choice is left as it is.
    """
    pause_days = None if pause == "keep" else _int(pause)
    choice = (tracking == "on") if tracking_shown else None
    try:
        flows.update_preferences(
            ctx, token, Client.of(request), topics=topics, pause_days=pause_days,
            source="web:preferences", tracking=choice,
        )  # fmt: skip
    except ValidationError as exc:
        prefs = flows.preferences(ctx, token)
        return page(
            request, "preferences.html.j2", 422, token=token, prefs=prefs, saved=False,
            error=exc.message, pause_choices=flows.PAUSE_CHOICES,
            active=prefs.status == SubscriberStatus.CONFIRMED,
        )  # fmt: skip
    return RedirectResponse(f"/preferences/{token}?saved=1", status_code=303)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationError("choose one of the pause options") from None


@router.get("/u/{token}")
def unsubscribe_page(request: Request, ctx: Ctx, token: str) -> Response:
    """Only shows a button: link scanners GET this URL and must not unsubscribe anyone."""
    status = flows.check_unsubscribe(ctx, token)
    return page(request, "unsubscribe.html.j2", token=token, status=status)


@router.post("/u/{token}")
def unsubscribe(
    request: Request,
    ctx: Ctx,
    token: str,
    list_unsubscribe: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
) -> Response:
    """RFC 8058 one-click (and the page's button): unsubscribe, 200, no redirect, idempotent.

    Any POST with a valid token unsubscribes, whatever its body says: the
    token is the authentication, and a mail provider's request must never fail
    on a detail of encoding.
    """
    source = "one-click" if list_unsubscribe == "One-Click" else "web:unsubscribe"
    flows.unsubscribe(ctx, token, Client.of(request), source=source)
    return page(request, "unsubscribed.html.j2")


@router.get(links.TEST_UNSUBSCRIBE_PATH)
def test_unsubscribe_page(request: Request) -> Response:
    """The unsubscribe link of a test send or preview: explains, changes nothing."""
    return page(request, "test_link.html.j2", kind="unsubscribe", posted=False)


@router.post(links.TEST_UNSUBSCRIBE_PATH)
def test_unsubscribe(request: Request) -> Response:
    """A mail client's RFC 8058 one-click POST to a test message: 200, nobody unsubscribed."""
    return page(request, "test_link.html.j2", kind="unsubscribe", posted=True)


@router.get(links.TEST_PREFERENCES_PATH)
def test_preferences_page(request: Request) -> Response:
    return page(request, "test_link.html.j2", kind="preferences", posted=False)
