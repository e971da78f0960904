"""The hot endpoints parse bodies themselves: same answers as FastAPI's own body parsing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from medgym.core.sample import Sample
from medgym.serving.app import _install_error_handlers
from medgym.serving.schemas import RenderRequest, ToolCallRequest


def _reference_app() -> FastAPI:
    """FastAPI parsing the same models, behind the server's error handlers."""
    app = FastAPI()
    _install_error_handlers(app)

    @app.post("/v1/tools/call")
    def call(req: ToolCallRequest) -> dict[str, str]:
        return {"ok": "parsed"}

    @app.post("/v1/render")
    def render(req: RenderRequest) -> dict[str, str]:
        return {"ok": "parsed"}

    return app


JSON = {"Content-Type": "application/json"}
VIEW = '{"bbox_px": [0, 0, 10, 10], "out_size": [8, 8]}'
CASES = [
    pytest.param(b"", JSON, id="empty"),
    pytest.param(b"{not json", JSON, id="not-json"),
    pytest.param(b'{"images": [', JSON, id="truncated"),
    pytest.param(b"\xff\xfe\xfa", JSON, id="not-text"),
    pytest.param(b"[]", JSON, id="array"),
    pytest.param(b"null", JSON, id="null"),
    pytest.param(b"{}", JSON, id="no-fields"),
    pytest.param(b'{"images": []}', {"Content-Type": "text/plain"}, id="text-plain"),
    pytest.param(b'{"images": []}', {}, id="no-content-type"),
    pytest.param(
        b'{"images": [{"uri": "a.png"}], "views": [' + VIEW.encode() + b"]}",
        {"Content-Type": "application/vnd.api+json"},
        id="plus-json",
    ),
    pytest.param(
        b'{"images": [{"uri": ""}], "views": [{"bbox_px": [5, 0, 1, 1], "out_size": [0, 1]}],'
        b' "name": 3, "encoding": "gif", "extra": 1}',
        JSON,
        id="many-errors",
    ),
    pytest.param(
        b'{"images": [{"uri": "a.png"}], "views": [{"bbox_px": [0, 0, NaN, 1], "out_size": [1, 1]}]'
        b', "name": "zoom_in"}',
        JSON,
        id="nan-literal",
    ),
    pytest.param(
        '{"images": [{"uri": "a.png"}], "views": [], "name": "zoom_in"}'.encode("utf-16"),
        JSON,
        id="utf-16",
    ),
]


@pytest.mark.parametrize("path", ["/v1/tools/call", "/v1/render"])
@pytest.mark.parametrize(("body", "headers"), CASES)
def test_bad_bodies_fail_as_fastapi_fails(
    client: TestClient, path: str, body: bytes, headers: dict[str, str]
) -> None:
    with TestClient(_reference_app()) as ref:
        expected = ref.post(path, content=body, headers=headers)
    got = client.post(path, content=body, headers=headers)
    assert expected.status_code in (400, 422)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())


def test_a_good_body_is_served(client: TestClient, sample: Sample) -> None:
    ref = sample.images[0].model_dump(mode="json")
    body: dict[str, Any] = {
        "images": [ref], "views": [{"bbox_px": [0, 0, 100, 100], "out_size": [100, 100]}],
        "name": "crop", "arguments": {"bbox_2d": [0, 0, 50, 50]},
    }  # fmt: skip
    for ctype in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        r = client.post("/v1/tools/call", json=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text
        assert r.json()["view"]["bbox_px"] == [0.0, 0.0, 50.0, 50.0]


def test_requests_reach_the_self_parsing_route(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medgym.serving.app as app_module

    seen: list[str] = []
    original = app_module.parse_body

    def spy(model: type, body: bytes, content_type: str | None) -> Any:
        seen.append(model.__name__)
        return original(model, body, content_type)

    monkeypatch.setattr(app_module, "parse_body", spy)
    client.post("/v1/tools/call", content=b"{}", headers=JSON)
    client.post("/v1/render", content=b"{}", headers=JSON)
    assert seen == ["ToolCallRequest", "RenderRequest"]
