"""The hot path (``medgym.serving.hot``) answers exactly as the FastAPI routes it stands in for."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medgym.core.sample import Sample
from medgym.serving.app import create_app
from medgym.serving.encoding import MEDIA_TYPES
from medgym.serving.hot import HotPathMiddleware
from medgym.serving.settings import ServerSettings


@pytest.fixture()
def plain(settings: ServerSettings) -> Iterator[TestClient]:
    """The same app with the hot path taken out: FastAPI's routes answer everything."""
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotPathMiddleware]
    with TestClient(app) as c:
        yield c


def _requests(sample: Sample) -> list[tuple[str, Any, dict[str, str]]]:
    ref = sample.images[0].model_dump(mode="json")
    view = {"bbox_px": [0, 0, 512, 512], "out_size": [64, 64]}
    call = {"images": [ref], "views": [view], "name": "zoom_in",
            "arguments": {"bbox_2d": [8, 8, 40, 40]}}  # fmt: skip
    raw = {"Accept": MEDIA_TYPES["raw"]}
    return [
        ("/v1/tools/call", call, {}),
        ("/v1/tools/call", {**call, "encoding": "png"}, {}),
        ("/v1/tools/call", {**call, "encoding": "raw"}, raw),
        ("/v1/tools/call", {**call, "arguments": {"bbox_2d": [90, 90, 99, 99]}}, {}),
        ("/v1/tools/call", {**call, "name": "no_such_tool"}, {}),
        ("/v1/tools/call", {**call, "views": [{**view, "image_index": 3}]}, {}),
        ("/v1/tools/call", {**call, "images": [{"uri": "/etc/passwd"}]}, {}),
        ("/v1/tools/call", {**call, "tool_config": {"bogus": 1}}, {}),
        ("/v1/tools/call", {**call, "encoding": "gif"}, {}),
        ("/v1/render", {"images": [ref], "view": view, "encoding": "raw"}, {}),
        ("/v1/render", {"images": [ref], "view": {**view, "image_index": 1}}, {}),
    ]


def test_the_hot_path_answers_as_the_fastapi_routes(
    client: TestClient, plain: TestClient, sample: Sample
) -> None:
    statuses = set()
    for path, body, headers in _requests(sample):
        got = client.post(path, json=body, headers=headers)
        want = plain.post(path, json=body, headers=headers)
        statuses.add(got.status_code)
        assert got.status_code == want.status_code, (path, body, got.text, want.text)
        assert got.content == want.content, (path, body)
        for name in ("content-type", "x-medgym-shape", "x-medgym-result"):
            assert got.headers.get(name) == want.headers.get(name), (name, path, body)
    assert statuses >= {200, 403, 422}


def test_other_methods_go_on_to_fastapi(client: TestClient) -> None:
    r = client.get("/v1/tools/call")
    assert r.status_code == 405
    assert r.json()["error"] == "HTTPError"


def test_an_unexpected_failure_is_a_bare_500(
    settings: ServerSettings, sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals /srv/x.py line 3")

    monkeypatch.setattr(app.state.service, "run_tool", broken)
    call = _requests(sample)[0][1]
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/tools/call", json=call)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error (logged on the server)",
                        "error": "InternalError"}  # fmt: skip
    assert "secret" not in r.text
    assert r.headers["connection"] == "close"  # a pooled client must not reuse the connection


def test_an_unexpected_failure_is_logged_once_and_bounded(
    settings: ServerSettings,
    sample: Sample,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 18 D7: a 10 MB string in an exception was logged twice with its traceback."""
    app = create_app(settings)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("cannot open " + "p" * 10_000_000)

    monkeypatch.setattr(app.state.service, "run_tool", broken)
    call = _requests(sample)[0][1]
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/tools/call", json=call)
    assert r.status_code == 500
    records = [rec for rec in caplog.records if "unexpected error" in rec.getMessage()]
    assert len(records) == 1
    assert len(records[0].getMessage()) < 50_000 and "more chars" in records[0].getMessage()


def test_a_large_chunked_body_is_refused_on_the_hot_path(settings: ServerSettings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(small)) as c:
        r = c.post("/v1/tools/call", content=iter([b"{" + b" " * 800, b" " * 800 + b"}"]),
                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    assert "exceeds the limit of 1000 bytes" in r.json()["detail"]


def _drive(mw: HotPathMiddleware, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/hot",
             "headers": [(b"content-type", b"application/json"), (b"accept", b"x/y")]}  # fmt: skip
    asyncio.run(mw(scope, receive, send))
    return sent


def _echo_middleware() -> tuple[HotPathMiddleware, list[Any]]:
    from starlette.responses import Response

    seen: list[Any] = []

    async def handler(body: bytes, ctype: str | None, accept: str) -> Response:
        seen.append((body, ctype, accept))
        if body == b"boom":
            raise KeyError("boom")
        return Response(json.dumps(len(body)))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the hot path should have answered")

    def on_error(exc: Exception) -> Response | None:
        return Response("known", status_code=418) if isinstance(exc, KeyError) else None

    return HotPathMiddleware(app, {"/hot": handler}, on_error), seen


def test_a_body_in_chunks_reaches_the_handler_whole() -> None:
    mw, seen = _echo_middleware()
    sent = _drive(mw, [{"type": "http.request", "body": b"ab", "more_body": True},
                       {"type": "http.request", "body": b"cd", "more_body": False}])  # fmt: skip
    assert seen == [(b"abcd", "application/json", "x/y")]
    assert (sent[0]["status"], sent[1]["body"]) == (200, b"4")


def test_a_known_error_is_answered_by_on_error() -> None:
    mw, _ = _echo_middleware()
    sent = _drive(mw, [{"type": "http.request", "body": b"boom"}])
    assert (sent[0]["status"], sent[1]["body"]) == (418, b"known")


def test_a_client_gone_mid_body_gets_no_answer() -> None:
    mw, seen = _echo_middleware()
    sent = _drive(mw, [{"type": "http.request", "body": b"ab", "more_body": True},
                       {"type": "http.disconnect"}])  # fmt: skip
    assert (seen, sent) == ([], [])
