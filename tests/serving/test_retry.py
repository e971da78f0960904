from __future__ import annotations

import httpx
import pytest

from medgym.serving.client import ToolServerClient, ToolServerError


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
