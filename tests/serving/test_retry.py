from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from medgym.errors import ConfigError
from medgym.serving.client import AsyncToolServerClient, ToolServerClient, ToolServerError


def _client(handler: httpx.MockTransport) -> ToolServerClient:
    c = ToolServerClient("http://127.0.0.1:1", retries=3, backoff=0.0)
    c._http = httpx.Client(base_url=c.base_url, transport=handler)
    return c


def test_5xx_is_retried_until_success() -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"detail": "busy", "error": "InternalError"})
        return httpx.Response(200, json={"status": "ok", "version": "x"})

    assert _client(httpx.MockTransport(handle)).health()
    assert len(calls) == 3


@pytest.mark.parametrize("code", [400, 401, 413, 422])
def test_4xx_is_not_retried(code: int) -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(code, json={"detail": "nope", "error": "HTTPError"})

    with pytest.raises(ToolServerError, match="nope") as info:
        _client(httpx.MockTransport(handle)).tools()
    assert len(calls) == 1 and info.value.status_code == code


def _throttled(times: int, retry_after: str | None = "0.01") -> tuple[list[float], Any]:
    """A handler that answers 429 ``times`` times, then 200; and the times it was called."""
    calls: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) <= times:
            headers = {} if retry_after is None else {"retry-after": retry_after}
            body = {"detail": "share spent", "error": "OverQuota"}
            return httpx.Response(429, json=body, headers=headers)
        return httpx.Response(200, json={"status": "ok", "version": "x"})

    return calls, handle


def test_429s_are_waited_out_past_the_retry_count() -> None:
    # retries bound 5xx and connection failures; a 429 is waited out within `patience`
    calls, handle = _throttled(6)
    c = ToolServerClient("http://127.0.0.1:1", retries=0, backoff=0.0, patience=5.0)
    c._http = httpx.Client(base_url=c.base_url, transport=httpx.MockTransport(handle))
    assert c.health()
    assert len(calls) == 7


def test_a_429_is_raised_once_patience_is_spent() -> None:
    calls, handle = _throttled(100, retry_after="0.2")
    c = ToolServerClient("http://127.0.0.1:1", retries=3, backoff=0.0, patience=0.5)
    c._http = httpx.Client(base_url=c.base_url, transport=httpx.MockTransport(handle))
    with pytest.raises(ToolServerError, match="share spent") as info:
        c.health()
    # two waits of 0.2-0.25 s fit in 0.5 s, a third would not
    assert info.value.status_code == 429 and len(calls) == 3
    assert 0.4 <= calls[-1] - calls[0] < 1.0


def test_a_429_without_retry_after_waits_a_second() -> None:
    calls, handle = _throttled(100, retry_after=None)
    c = ToolServerClient("http://127.0.0.1:1", retries=3, backoff=0.0, patience=0.5)
    c._http = httpx.Client(base_url=c.base_url, transport=httpx.MockTransport(handle))
    with pytest.raises(ToolServerError):
        c.health()
    assert len(calls) == 1  # a second would overrun the patience: no tight loop


def test_the_async_client_waits_out_429s_too() -> None:
    calls, handle = _throttled(4)
    c = AsyncToolServerClient("http://127.0.0.1:1", retries=0, backoff=0.0, patience=5.0)
    c._http = httpx.AsyncClient(base_url=c.base_url, transport=httpx.MockTransport(handle))
    assert asyncio.run(c.health())
    assert len(calls) == 5


def test_a_503_waits_at_least_its_retry_after() -> None:
    calls: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            body = {"detail": "busy", "error": "ServerBusy"}
            return httpx.Response(503, json=body, headers={"retry-after": "0.3"})
        return httpx.Response(200, json={"status": "ok", "version": "x"})

    assert _client(httpx.MockTransport(handle)).health()  # backoff 0
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.29


@pytest.mark.parametrize("patience", [-1.0, float("nan")])
def test_a_bad_patience_is_refused(patience: float) -> None:
    with pytest.raises(ConfigError, match="patience"):
        ToolServerClient("http://127.0.0.1:1", patience=patience)
