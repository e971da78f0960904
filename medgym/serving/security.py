"""Request guards: bearer token (constant-time compare) and a request body size limit."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request, status

__all__ = ["BodyLimitMiddleware", "BodyTooLargeError", "make_token_check"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def make_token_check(token: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency that accepts only ``Authorization: Bearer <token>`` (if a token is set).

    The comparison is constant-time (:func:`secrets.compare_digest`).
    """
    expected = token.encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token; send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not secrets.compare_digest(given.strip().encode(), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


class BodyTooLargeError(Exception):
    """Raised from ``receive`` once a body passes the limit (caught by the middleware)."""


class BodyLimitMiddleware:
    """Answer 413 to a body over ``max_bytes``: by ``Content-Length`` up front, else while reading.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Run the app with a size-checked ``receive``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "Content-Length is not an integer", "BadRequest")
                    return
                if declared > self.max_bytes:
                    await self._reject(send, 413, self._message(declared))
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await self._reject(send, 413, self._message(seen))

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes"

    @staticmethod
    async def _reject(send: Send, code: int, detail: str, error: str = "RequestTooLarge") -> None:
        body = json.dumps({"detail": detail, "error": error}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
