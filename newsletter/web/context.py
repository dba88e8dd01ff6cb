"""What every request handler receives: settings, database, messenger and helpers.

Built once by ``create_app`` and stored on ``app.state``; handlers get it via
the ``Ctx`` dependency.  Nothing here is a module-level singleton, so tests can
run several apps side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from newsletter.config import Settings
from newsletter.db import Database
from newsletter.subscribers.tokens import Tokens
from newsletter.transports import Messenger
from newsletter.web.limits import SlidingWindowLimiter


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from, as recorded on consent events."""

    ip: str | None
    user_agent: str | None

    @classmethod
    def of(cls, request: Request) -> Client:
        ip = request.client.host if request.client else None
        return cls(ip=ip, user_agent=request.headers.get("user-agent"))


@dataclass
class WebContext:
    settings: Settings
    db: Database
    messenger: Messenger
    tokens: Tokens
    ip_limiter: SlidingWindowLimiter
    clock: Callable[[], datetime]
    sends_in_process: bool = False  # serve runs the scheduler and a worker beside the app

    @property
    def topics(self) -> list[str]:
        return [topic.name for topic in self.settings.topics]


def web_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


Ctx = Annotated[WebContext, Depends(web_context)]
