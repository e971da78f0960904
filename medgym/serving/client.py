"""Sync and async HTTP clients of the tool server (httpx): pooled, with timeouts and retries.

Retries (exponential backoff with jitter) cover 5xx answers and connection-level failures, at
most ``retries`` of them per request. A 429 (this client's share of the server's heavy work is
spent for now) is waited out instead, for its ``Retry-After``, for at most ``patience`` seconds in
all per request: a batch of new images then registers at the rate the server allows instead of
failing. Any other 4xx is final and raised as the matching medgym error: ``ToolError`` (422 from
a tool, same message the model would see), ``DatasetError`` (400), else :class:`ToolServerError`.

Example:
    >>> client = ToolServerClient("http://127.0.0.1:8000")  # doctest: +SKIP
    >>> client.call_tool(images, views, "zoom_in", {"bbox_2d": [0, 0, 100, 100]})  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel

from medgym.core.images import ImageRef
from medgym.core.view import ViewSpec
from medgym.errors import ConfigError, DatasetError, InvalidBBoxError, MedGymError, ToolError
from medgym.serving.encoding import MEDIA_TYPES, decode_pixels
from medgym.serving.schemas import (
    EncodedImage,
    ImageDescription,
    ToolCallResponse,
    TurnResponse,
)

__all__ = [
    "AsyncToolServerClient",
    "ToolCallResult",
    "ToolServerClient",
    "ToolServerError",
    "decode_image",
]

logger = logging.getLogger(__name__)

#: A tool call's result and the new view's pixels (``None`` when the tool made no view).
ToolCallResult = tuple[ToolCallResponse, np.ndarray | None]

_RETRY_EXC = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.RemoteProtocolError)


class ToolServerError(MedGymError):
    """The server refused a request (a 4xx other than a tool or dataset error), or kept failing."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def decode_image(image: EncodedImage) -> np.ndarray:
    """Pixels of an :class:`EncodedImage` from a tool call or turn response."""
    return decode_pixels(base64.b64decode(image.data), image.encoding, tuple(image.shape))


#: (status, ``error`` name) -> the medgym error raised again on the client, subclasses included
#: (a box outside the image is an ``InvalidBBoxError``, a ``ToolError`` the session handles).
_ERRORS: dict[tuple[int, str], type[MedGymError]] = {
    **{(422, c.__name__): c for c in (ToolError, InvalidBBoxError, ConfigError)},
    (400, DatasetError.__name__): DatasetError,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        detail, error = str(body.get("detail", response.text)), str(body.get("error", ""))
    except ValueError:
        detail, error = response.text[:500], ""
    cls = _ERRORS.get((response.status_code, error))
    if cls is not None:
        raise cls(detail)
    raise ToolServerError(f"HTTP {response.status_code}: {detail}", response.status_code)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _tool_body(
    images: Sequence[ImageRef], views: Sequence[ViewSpec], name: str,
    arguments: dict[str, Any] | None, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    body = {
        "images": [_dump(r) for r in images],
        "views": [_dump(v) for v in views],
        "name": name,
        "arguments": dict(arguments or {}),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _tool_pixels(response: httpx.Response, encoding: str) -> ToolCallResult:
    if response.headers.get("content-type", "").startswith("application/json"):
        result = ToolCallResponse.model_validate(response.json())
        return result, (decode_image(result.image) if result.image is not None else None)
    result = ToolCallResponse.model_validate_json(response.headers["x-medgym-result"])
    return result, _render_pixels(response, encoding)


def _render_pixels(response: httpx.Response, encoding: str) -> np.ndarray:
    shape = tuple(int(n) for n in response.headers.get("x-medgym-shape", "").split(",") if n)
    return decode_pixels(response.content, encoding, shape or None)


class _Attempts:
    """What one request has spent on retries; says how long to wait before the next attempt."""

    def __init__(self, client: _Base) -> None:
        self.client = client
        self.failures = 0  # 5xx answers and connection failures so far
        self.waited = 0.0  # seconds spent waiting out 429s so far

    def next_delay(self, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying again, or ``None`` to give up.

        Args:
            response: The answer (a 5xx or a 429), or ``None`` for a connection failure.
        """
        c = self.client
        # the server's Retry-After (at most 30 s), jittered so that the clients it refused
        # together do not all come back in the same tick
        after = _retry_after(response) * (1 + random.random() / 4)
        if response is not None and response.status_code == 429:
            after = after or 1.0  # no Retry-After: a second (waiting counts toward patience)
            if self.waited + after > c.patience:
                return None
            self.waited += after
            return after
        if self.failures >= c.retries:
            return None
        self.failures += 1
        return max(after, c.backoff * (2 ** (self.failures - 1)) * (0.5 + random.random() / 2))


def _retry_after(response: httpx.Response | None) -> float:
    """The answer's ``Retry-After`` in seconds, at most 30 (0 when absent or not a number)."""
    if response is None:
        return 0.0
    with contextlib.suppress(ValueError):
        return min(max(0.0, float(response.headers.get("retry-after", 0))), 30.0)
    return 0.0


def _retryable(response: httpx.Response) -> bool:
    """A 5xx, or a 429 (this client's share of heavy work is spent for now)."""
    return response.status_code >= 500 or response.status_code == 429


class _Base:
    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 30.0,
        retries: int = 3, backoff: float = 0.1, patience: float = 120.0,
        max_connections: int = 64,
    ) -> None:  # fmt: skip
        if retries < 0 or backoff < 0 or timeout <= 0 or not patience >= 0:
            raise ConfigError(
                "need retries >= 0, backoff >= 0, timeout > 0, patience >= 0; got "
                f"{retries}, {backoff}, {timeout}, {patience}"
            )
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.patience = patience
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )


class ToolServerClient(_Base):
    """Blocking client; share one per thread pool (httpx pools connections).

    Args:
        base_url: ``http://host:port`` of the server.
        token: Bearer token, when the server wants one.
        timeout: Seconds per request (connect at most 5 s).
        retries: Extra attempts after a 5xx or a connection failure.
        backoff: First retry delay in seconds; doubles each retry (with jitter).
        patience: Most seconds one request spends waiting out 429s (each for the server's
            ``Retry-After``, at most 30 s, with jitter) before the 429 is raised.
        max_connections: Pool size.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout,
            limits=self._limits,
        )  # fmt: skip

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ToolServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; raise the matching error for a 4xx/5xx."""
        attempts = _Attempts(self)
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except _RETRY_EXC as e:
                delay = attempts.next_delay(None)
                if delay is None:
                    raise ToolServerError(f"cannot reach {self.base_url}{path}: {e}") from e
                logger.debug("retrying %s %s after %r", method, path, e)
            else:
                delay = attempts.next_delay(response) if _retryable(response) else None
                if delay is None:
                    _raise_for(response)
                    return response
                logger.debug("retrying %s %s after HTTP %s", method, path, response.status_code)
            time.sleep(delay)

    def health(self) -> bool:
        """Whether the server is live."""
        return self.request("GET", "/v1/health").json()["status"] == "ok"

    def tools(self) -> list[dict[str, Any]]:
        """The OpenAI schemas of the server's tools."""
        return list(self.request("GET", "/v1/tools").json())

    def upload(self, data: bytes, *, filename: str | None = None) -> ImageDescription:
        """Store image bytes on the server; returns its ``store://`` reference and facts."""
        params = {"filename": filename} if filename else None
        r = self.request("POST", "/v1/images", content=data, params=params,
                         headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        return ImageDescription.model_validate(r.json())

    def register(self, ref: ImageRef) -> ImageDescription:
        """Describe an image the server can reach (path under its data root, or a URI)."""
        r = self.request("POST", "/v1/images/register", json={"ref": _dump(ref)})
        return ImageDescription.model_validate(r.json())

    def call_tool(
        self, images: Sequence[ImageRef], views: Sequence[ViewSpec], name: str,
        arguments: dict[str, Any] | None = None, **options: Any,
    ) -> ToolCallResponse:  # fmt: skip
        """Run a tool; ``options``: ``profile``, ``max_pixels``, ``tool_config``, ``encoding``.

        Raises:
            ToolError: The tool refused the arguments (same message as in-process).
        """
        r = self.request("POST", "/v1/tools/call",
                         json=_tool_body(images, views, name, arguments, **options))  # fmt: skip
        return ToolCallResponse.model_validate(r.json())

    def call_tool_pixels(
        self, images: Sequence[ImageRef], views: Sequence[ViewSpec], name: str,
        arguments: dict[str, Any] | None = None, *, encoding: str = "raw", **options: Any,
    ) -> ToolCallResult:  # fmt: skip
        """Run a tool and get the new view's pixels in the same round trip (binary body).

        Raises:
            ToolError: The tool refused the arguments (same message as in-process).
        """
        body = _tool_body(images, views, name, arguments, encoding=encoding, **options)
        headers = {"Accept": f"{MEDIA_TYPES[encoding]}, application/json"}
        r = self.request("POST", "/v1/tools/call", json=body, headers=headers)
        return _tool_pixels(r, encoding)

    def render(
        self, images: Sequence[ImageRef], view: ViewSpec, *, encoding: str = "raw"
    ) -> np.ndarray:
        """Pixels of ``view`` as a fresh ``(height, width, 3)`` uint8 array."""
        body = {"images": [_dump(r) for r in images], "view": _dump(view), "encoding": encoding}
        return _render_pixels(self.request("POST", "/v1/render", json=body), encoding)

    def turn(self, text: str, **fields: Any) -> TurnResponse:
        """Apply a model turn (see :class:`~medgym.serving.schemas.TurnRequest` for fields)."""
        body = {k: (_dump(v) if isinstance(v, BaseModel) else v) for k, v in fields.items()}
        r = self.request("POST", "/v1/turn", json={**body, "text": text})
        return TurnResponse.model_validate(r.json())


class AsyncToolServerClient(_Base):
    """The async twin of :class:`ToolServerClient` (same arguments and methods, awaited)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout,
            limits=self._limits,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncToolServerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; raise the matching error for a 4xx/5xx."""
        attempts = _Attempts(self)
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except _RETRY_EXC as e:
                delay = attempts.next_delay(None)
                if delay is None:
                    raise ToolServerError(f"cannot reach {self.base_url}{path}: {e}") from e
            else:
                delay = attempts.next_delay(response) if _retryable(response) else None
                if delay is None:
                    _raise_for(response)
                    return response
            await asyncio.sleep(delay)

    async def health(self) -> bool:
        """Whether the server is live."""
        return (await self.request("GET", "/v1/health")).json()["status"] == "ok"

    async def tools(self) -> list[dict[str, Any]]:
        """The OpenAI schemas of the server's tools."""
        return list((await self.request("GET", "/v1/tools")).json())

    async def upload(self, data: bytes, *, filename: str | None = None) -> ImageDescription:
        """Store image bytes on the server."""
        params = {"filename": filename} if filename else None
        r = await self.request("POST", "/v1/images", content=data, params=params,
                               headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        return ImageDescription.model_validate(r.json())

    async def register(self, ref: ImageRef) -> ImageDescription:
        """Describe an image the server can reach."""
        r = await self.request("POST", "/v1/images/register", json={"ref": _dump(ref)})
        return ImageDescription.model_validate(r.json())

    async def call_tool(
        self, images: Sequence[ImageRef], views: Sequence[ViewSpec], name: str,
        arguments: dict[str, Any] | None = None, **options: Any,
    ) -> ToolCallResponse:  # fmt: skip
        """Run a tool (see :meth:`ToolServerClient.call_tool`)."""
        body = _tool_body(images, views, name, arguments, **options)
        r = await self.request("POST", "/v1/tools/call", json=body)
        return ToolCallResponse.model_validate(r.json())

    async def call_tool_pixels(
        self, images: Sequence[ImageRef], views: Sequence[ViewSpec], name: str,
        arguments: dict[str, Any] | None = None, *, encoding: str = "raw", **options: Any,
    ) -> ToolCallResult:  # fmt: skip
        """Run a tool and get the new view's pixels in the same round trip."""
        body = _tool_body(images, views, name, arguments, encoding=encoding, **options)
        headers = {"Accept": f"{MEDIA_TYPES[encoding]}, application/json"}
        r = await self.request("POST", "/v1/tools/call", json=body, headers=headers)
        return _tool_pixels(r, encoding)

    async def render(
        self, images: Sequence[ImageRef], view: ViewSpec, *, encoding: str = "raw"
    ) -> np.ndarray:
        """Pixels of ``view``."""
        body = {"images": [_dump(r) for r in images], "view": _dump(view), "encoding": encoding}
        return _render_pixels(await self.request("POST", "/v1/render", json=body), encoding)

    async def turn(self, text: str, **fields: Any) -> TurnResponse:
        """Apply a model turn."""
        body = {k: (_dump(v) if isinstance(v, BaseModel) else v) for k, v in fields.items()}
        r = await self.request("POST", "/v1/turn", json={**body, "text": text})
        return TurnResponse.model_validate(r.json())
