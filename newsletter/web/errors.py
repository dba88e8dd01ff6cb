"""``NewsletterError`` -> HTTP: one line as JSON under ``/api``, an error page elsewhere."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter.errors import (
    AuthenticationError,
    ForbiddenError,
    NewsletterError,
    NotFoundError,
    PreflightError,
    StateError,
    TokenError,
    ValidationError,
)
from newsletter.subscribers.tokens import ExpiredTokenError
from newsletter.web.limits import RateLimitedError
from newsletter.web.templating import page

STATUS: tuple[tuple[type[NewsletterError], int], ...] = (
    (RateLimitedError, 429),
    (AuthenticationError, 401),
    (ForbiddenError, 403),
    (TokenError, 400),
    (PreflightError, 422),
    (ValidationError, 422),
    (NotFoundError, 404),
    (StateError, 409),
)
TITLES = {
    429: "Please slow down",
    400: "This link does not work",
    404: "Page not found",
    405: "Not possible",
    409: "Not possible",
    413: "Too large",
}


def status_for(exc: NewsletterError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def _is_api(request: Request) -> bool:
    """JSON answers go to programs: API paths, unless the client is a browser asking for HTML."""
    path = request.url.path
    api = path.startswith(("/api/", "/admin/api/", "/webhooks/")) or path == "/api"
    return api and "text/html" not in request.headers.get("accept", "")


async def newsletter_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NewsletterError)
    code = status_for(exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else None
    if isinstance(exc, AuthenticationError):
        headers = {"WWW-Authenticate": "Bearer"}
    if _is_api(request):
        return JSONResponse({"detail": exc.message}, status_code=code, headers=headers)
    response = page(
        request, "error.html.j2", code, title=TITLES.get(code, "Something went wrong"),
        message=exc.message, expired=isinstance(exc, ExpiredTokenError),
    )  # fmt: skip
    if headers:
        response.headers.update(headers)
    return response


async def invalid_request(request: Request, exc: Exception) -> Response:
    """Malformed input the handlers never saw: one line, like every other error."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=422)
    return page(
        request, "error.html.j2", 422, title="Invalid request", message=message, expired=False
    )


HTTP_MESSAGES = {
    404: "there is no page at this address",
    405: "this address does not accept that kind of request",
}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (unknown path, wrong method): a page for browsers, not JSON."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    message = HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
    if _is_api(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    response = page(
        request, "error.html.j2", exc.status_code, message=message, expired=False,
        title=TITLES.get(exc.status_code, "Something went wrong"),
    )  # fmt: skip
    response.headers.update(headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(NewsletterError, newsletter_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
