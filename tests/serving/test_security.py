"""Token and body-size guards (pure ASGI middleware)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medgym.errors import ConfigError
from medgym.serving.app import create_app
from medgym.serving.security import BearerTokenMiddleware, BodyLimitMiddleware
from medgym.serving.settings import ServerSettings


@pytest.fixture()
def guarded(settings: ServerSettings) -> TestClient:
    extra = {"token": "s3cret", "cors_origins": ["http://a.example"]}
    return TestClient(create_app(ServerSettings(**{**settings.model_dump(), **extra})))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/v1/health", 200, id="health-open"),
        pytest.param("GET", "/v1/ready", 200, id="ready-open"),
        pytest.param("GET", "/openapi.json", 200, id="schema-open"),
        pytest.param("GET", "/docs", 200, id="docs-open"),
        pytest.param("GET", "/v1/tools", 401, id="tools"),
        pytest.param("POST", "/v1/tools/call", 401, id="call"),
        pytest.param("POST", "/v1/render", 401, id="render"),
        pytest.param("GET", "/v1/no-such-route", 401, id="unknown-path-reveals-nothing"),
    ],
)
def test_what_needs_the_token(guarded: TestClient, method: str, path: str, status: int) -> None:
    r = guarded.request(method, path, content=b"{}")
    assert r.status_code == status
    if status == 401:
        assert r.json() == {
            "detail": "missing bearer token; send `Authorization: Bearer <token>`",
            "error": "HTTPError",
        }
        assert r.headers["www-authenticate"] == "Bearer"


def test_cors_preflight_needs_no_token(guarded: TestClient) -> None:
    r = guarded.options(
        "/v1/tools/call",
        headers={"Origin": "http://a.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://a.example"
    refused = guarded.get("/v1/tools", headers={"Origin": "http://a.example"})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "http://a.example"


def test_token_middleware_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="non-empty token"):
        BearerTokenMiddleware(lambda s, r, se: None, token="")  # type: ignore[arg-type,return-value]


def _run_limited(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict[str, Any]]:
    """Drive BodyLimitMiddleware(max 100 bytes) around an app that reads the whole body."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimitMiddleware(app, max_bytes=100)(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("headers", "chunks", "status"),
    [
        pytest.param([(b"content-length", b"50")], [b"x" * 50], 200, id="declared-small"),
        pytest.param([(b"content-length", b"500")], [b"x" * 500], 413, id="declared-large"),
        pytest.param([(b"content-length", b"ten")], [b""], 400, id="declared-nonsense"),
        pytest.param([], [b"x" * 60, b"x" * 60], 413, id="chunked-large"),
        pytest.param([], [b"x" * 40, b"x" * 40], 200, id="chunked-small"),
        pytest.param(
            [(b"content-length", b"10"), (b"transfer-encoding", b"chunked")],
            [b"x" * 60, b"x" * 60],
            413,
            id="small-length-but-chunked",
        ),
    ],
)
def test_body_limit(headers: list[tuple[bytes, bytes]], chunks: list[bytes], status: int) -> None:
    assert _run_limited(headers, chunks)[0]["status"] == status
