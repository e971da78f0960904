"""The hot endpoints answered straight from ASGI, ahead of FastAPI's routing and middleware.

A tool call that hits the rendered-view LRU costs the server ~40 us of its own work; the layers
inside the app's own middleware (Starlette's exception middleware, FastAPI's exit stack, the
router, the route's ``Request`` and exception wrappers, each wrapping ``send`` again) cost ~40 us
more per call under load (``docs/serving.md``).
:class:`HotPathMiddleware` sits innermost among the app's own middleware (so the bearer token,
the body limit and CORS still apply) and hands ``POST`` requests to a few exact paths to a
handler that takes the body bytes and the two headers it needs. Errors go through the same
mapping the FastAPI handlers use (``medgym.serving.app._error_response``), so a client cannot
tell which path answered; anything unexpected propagates to Starlette's ``ServerErrorMiddleware``
and the app's 500 handler. Other methods and paths go on to FastAPI unchanged (a ``GET`` on a
hot path gets FastAPI's 405).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response

__all__ = ["HotHandler", "HotPathMiddleware", "read_body"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: ``handler(body, content_type, accept) -> Response``.
HotHandler = Callable[[bytes, "str | None", str], Awaitable[Response]]


async def read_body(receive: Receive) -> bytes:
    """The whole request body from ``receive``.

    Raises:
        ClientDisconnect: The client went away before the body ended.
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class HotPathMiddleware:
    """Serve ``POST`` to the paths in ``handlers`` directly; pass everything else to ``app``.

    Args:
        app: The wrapped ASGI app (FastAPI's router and its inner middleware).
        handlers: Exact path -> handler of the body and the ``Content-Type``/``Accept`` headers.
        on_error: The app's answer to an exception it knows (a 4xx response), or ``None`` to
            let the exception propagate (to the 500 handler).
    """

    def __init__(
        self,
        app: ASGIApp,
        handlers: Mapping[str, HotHandler],
        on_error: Callable[[Exception], Response | None],
    ) -> None:
        self.app = app
        self.handlers = dict(handlers)
        self.on_error = on_error

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Answer a hot request, or run the app."""
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type: str | None = None
        accept = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
        try:
            body = await read_body(receive)
        except ClientDisconnect:
            return
        try:
            response = await handler(body, content_type, accept)
        except Exception as exc:
            answer = self.on_error(exc)
            if answer is None:
                raise
            response = answer
        await response(scope, receive, send)
