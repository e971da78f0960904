"""The last stop of an unexpected server error: one bounded log record, a bare 500, close.

Starlette answers an unhandled exception with a 500 and then re-raises it, so uvicorn logs it a
second time and drops the keep-alive connection without saying so (a pooled client's next call
on it fails). :class:`UnexpectedErrorMiddleware` sits outside the app's own middleware: it logs
the error once, with every line of the traceback bounded (a 10 MB path in an exception message
no longer writes 20 MB of log), and answers ``500`` with ``Connection: close``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import MutableMapping
from typing import Any

from starlette.responses import JSONResponse

from medgym.serving.security import ASGIApp, Receive, ResponseStarted, Send

__all__ = ["MAX_LOG_LINE", "UnexpectedErrorMiddleware", "bounded_traceback"]

logger = logging.getLogger("medgym.serving.app")

MAX_LOG_LINE = 500
"""Longest line of a logged traceback or request path (characters)."""
_MAX_LINES = 60


def _clip(text: str, limit: int = MAX_LOG_LINE) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more chars]"


def bounded_traceback(exc: BaseException) -> str:
    """The traceback of ``exc``: its last lines, each at most :data:`MAX_LOG_LINE` long."""
    lines = "".join(traceback.format_exception(exc)).splitlines()
    if len(lines) > _MAX_LINES:
        lines = [f"... {len(lines) - _MAX_LINES} lines ...", *lines[-_MAX_LINES:]]
    return "\n".join(_clip(line) for line in lines)


class UnexpectedErrorMiddleware:
    """Answers any exception that reached it with a bare 500 and ``Connection: close``.

    Args:
        app: The ASGI app below.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Run the app; an exception becomes one log record and a 500."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = ResponseStarted(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            logger.error(
                "unexpected error on %s %s\n%s",
                scope.get("method"), _clip(str(scope.get("path", ""))), bounded_traceback(exc),
            )  # fmt: skip
            if tracked.started:  # the answer is half sent: only closing is left
                raise
            response = JSONResponse(
                {
                    "detail": "internal server error (logged on the server)",
                    "error": "InternalError",
                },
                status_code=500,
                headers={"connection": "close"},
            )
            await response(scope, receive, send)
