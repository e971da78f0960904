from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medgym.core.sample import Sample
from medgym.core.view import ViewSpec, render
from medgym.data.cache import load_image
from medgym.envs.session import EpisodeSession
from medgym.serving.app import create_app
from medgym.serving.encoding import decode_pixels
from medgym.serving.settings import ServerSettings
from medgym.tools import TOOLS, ImageInfo, ToolContext


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _ref(sample: Sample) -> dict[str, Any]:
    return sample.images[0].model_dump(mode="json")


def _full_view(client: TestClient, sample: Sample) -> dict[str, Any]:
    d = client.post("/v1/images/register", json={"ref": _ref(sample)}).json()
    return {"bbox_px": [0, 0, d["width"], d["height"]], "out_size": [448, 448]}


def test_health_ready_and_tools(client: TestClient) -> None:
    assert client.get("/v1/health").json()["status"] == "ok"
    assert client.get("/v1/ready").status_code == 200
    assert [t["function"]["name"] for t in client.get("/v1/tools").json()] == list(TOOLS)


def test_zoom_matches_in_process(client: TestClient, sample: Sample) -> None:
    view = _full_view(client, sample)
    args = {"bbox_2d": [10, 20, 200, 180]}
    r = client.post(
        "/v1/tools/call",
        json={"images": [_ref(sample)], "views": [view], "name": "zoom_in", "arguments": args,
              "encoding": "raw"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    image = load_image(sample.images[0])
    ctx = ToolContext(views=(ViewSpec(**view),), images=(ImageInfo.of(image),))
    from medgym.envs.profiles import get_profile

    ctx = ToolContext(views=ctx.views, images=ctx.images, sizer=get_profile("qwen2.5-vl").view_size)
    local = TOOLS["zoom_in"](ctx, args)
    assert body["text"] == local.text
    assert ViewSpec(**body["view"]) == local.view
    got = decode_pixels(base64.b64decode(body["image"]["data"]), "raw", body["image"]["shape"])
    np.testing.assert_array_equal(got, render(image, local.view))


def test_tool_error_is_422_with_model_message(client: TestClient, sample: Sample) -> None:
    view = _full_view(client, sample)
    r = client.post(
        "/v1/tools/call",
        json={"images": [_ref(sample)], "views": [view], "name": "zoom", "arguments": {}},
    )
    assert r.status_code == 422
    assert r.json() == {
        "detail": "unknown tool `zoom`; did you mean `zoom_in`? available tools: "
        + ", ".join(TOOLS),
        "error": "ToolError",
    }


@pytest.mark.parametrize("encoding", ["raw", "npy", "png", "webp"])
def test_render_encodings_are_lossless(client: TestClient, sample: Sample, encoding: str) -> None:
    view = _full_view(client, sample)
    r = client.post(
        "/v1/render", json={"images": [_ref(sample)], "view": view, "encoding": encoding}
    )
    assert r.status_code == 200
    shape = tuple(int(n) for n in r.headers["x-medgym-shape"].split(","))
    got = decode_pixels(r.content, encoding, shape)
    np.testing.assert_array_equal(got, render(load_image(sample.images[0]), ViewSpec(**view)))


def test_turn_replays_like_the_session(client: TestClient, sample: Sample) -> None:
    call = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 100, 100]}}</tool_call>'
    body = {"sample": sample.model_dump(mode="json"), "history": [call], "text": "no tags"}
    r = client.post("/v1/turn", json=body)
    assert r.status_code == 200, r.text
    s = EpisodeSession(sample)
    s.apply_turn(call)
    local = s.apply_turn("no tags")
    got = r.json()
    assert got["observation"] == local.observation
    assert got["reward"] == pytest.approx(local.reward)
    assert got["metrics"] == local.info["metrics"]
    named = client.post(
        "/v1/turn",
        json={"dataset": "synthetic", "sample_id": sample.id, "text": "<answer>yes</answer>"},
    )
    assert named.status_code == 200 and named.json()["terminated"] is True


def test_upload_then_zoom(client: TestClient) -> None:
    r = client.post("/v1/images", content=png_bytes(), params={"filename": "a.png"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["ref"]["uri"].startswith("store://") and (d["width"], d["height"]) == (64, 48)
    view = {"bbox_px": [0, 0, 64, 48], "out_size": [64, 48]}
    r = client.post(
        "/v1/tools/call",
        json={"images": [d["ref"]], "views": [view], "name": "crop",
              "arguments": {"bbox_2d": [0, 0, 32, 32]}},
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["view"]["bbox_px"] == [0.0, 0.0, 32.0, 32.0]


def _bomb_png(side: int = 30_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 4)  # a few rows; the header declares 900 M pixels
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        pytest.param(png_bytes()[:60], 400, "truncated or corrupt", id="truncated-png"),
        pytest.param(b"hello, not an image" * 10, 400, "unrecognised data", id="not-an-image"),
        pytest.param(_bomb_png(), 400, "pixels", id="30k-bomb"),
        pytest.param(b"\x00" * (3 * 1024 * 1024), 413, "exceeds the limit", id="oversized"),
        pytest.param(b"", 400, "no bytes", id="empty"),
    ],
)
def test_bad_uploads_are_4xx(client: TestClient, body: bytes, status: int, needle: str) -> None:
    r = client.post("/v1/images", content=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/images", "/v1/images/register", "/v1/turn"])
def test_chunked_oversized_body_is_413(client: TestClient, path: str) -> None:
    """Issue 18 D13: /register and /turn answered 400 (FastAPI's body-parse error) to this."""

    def gen() -> Any:
        for _ in range(4):
            yield b"\x00" * (1024 * 1024)

    r = client.post(path, content=gen(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "exceeds the limit" in r.json()["detail"]


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        pytest.param("scan.png", 200, id="under-root"),
        pytest.param("../secret.png", 403, id="dotdot"),
        pytest.param("sub/../../secret.png", 403, id="nested-dotdot"),
        pytest.param("/etc/passwd", 403, id="absolute"),
        pytest.param("file:///etc/passwd", 403, id="file-uri"),
        pytest.param("pkg://nibabel/../../x", 403, id="pkg-dotdot"),
        pytest.param("http://example.com/a.png", 400, id="unserved-scheme"),
    ],
)
def test_paths_stay_under_the_data_root(client: TestClient, uri: str, status: int) -> None:
    r = client.post("/v1/images/register", json={"ref": {"uri": uri}})
    assert r.status_code == status, r.text
    if status == 403:
        assert "refused" in r.json()["detail"]


def test_symlink_out_of_root_is_refused(client: TestClient, settings: ServerSettings) -> None:
    root = settings.data_root
    assert root is not None
    (root / "link.png").symlink_to(root.parent / "secret.png")
    r = client.post("/v1/images/register", json={"ref": {"uri": "link.png"}})
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("header", "status"),
    [
        pytest.param({}, 401, id="missing"),
        pytest.param({"Authorization": "Bearer nope"}, 401, id="wrong"),
        pytest.param({"Authorization": "Basic s3cret"}, 401, id="wrong-scheme"),
        pytest.param({"Authorization": "Bearer s3cret"}, 200, id="right"),
    ],
)
def test_token(settings: ServerSettings, header: dict[str, str], status: int) -> None:
    app = create_app(ServerSettings(**{**settings.model_dump(), "token": "s3cret"}))
    with TestClient(app) as c:
        assert c.get("/v1/health").status_code == 200  # liveness stays open
        r = c.get("/v1/tools", headers=header)
        assert r.status_code == status
        if status == 401:
            assert "token" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"


def test_no_cors_by_default_and_no_traces(client: TestClient) -> None:
    r = client.get("/v1/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = client.post(
        "/v1/tools/call", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "Traceback" not in r.text


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGYM_PORT", "9123")
    monkeypatch.setenv("MEDGYM_TOKEN", "abc")
    s = ServerSettings()
    assert s.port == 9123 and s.token is not None and s.token.get_secret_value() == "abc"
    assert "abc" not in repr(s)


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        pytest.param(
            "synthetic://v1?kind=xray&size=256&seed=1&noise=1&decoys=0"
            "&f=nodule:round:1:100:100:20000:0:100:3",
            "size must be <= the image size 256",
            id="huge-finding",
        ),
        pytest.param(
            "synthetic://v1?kind=xray&size=50000000&seed=1&noise=1&decoys=0",
            "size must be in [64, 8192]",
            id="huge-image",
        ),
        pytest.param(
            "synthetic://v1?kind=xray&size=256&seed=-3&noise=1&decoys=0",
            "seed must be in [0, 2**63)",
            id="negative-seed",
        ),
    ],
)
def test_unbounded_synthetic_uris_get_a_400_naming_the_bound(
    client: TestClient, uri: str, names: str
) -> None:
    """Issue 18 D1/D7: ~100 bytes cost 10 s and 3 GB, or a 500; now refused before drawing."""
    r = client.post("/v1/images/register", json={"ref": {"uri": uri}})
    assert r.status_code == 400, r.text
    assert names in r.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/tools/call", "/v1/render"])
def test_deeply_nested_json_is_a_400_not_a_500(client: TestClient, path: str) -> None:
    """Issue 18 D7: ~2,000-deep JSON raised RecursionError in the body parser."""
    body = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "nested too deeply" in r.json()["detail"]


def test_turn_with_a_non_string_prompt_is_a_422(client: TestClient, sample: Sample) -> None:
    """Issue 18 D7: `config.prompt` = 5 gave a 500 (also a crash in process)."""
    body = {"sample": sample.model_dump(mode="json"), "text": "<answer>yes</answer>",
            "config": {"prompt": 5}}  # fmt: skip
    r = client.post("/v1/turn", json=body)
    assert r.status_code == 422, r.text  # the server's answer to every ConfigError
    assert "prompt must be a prompt template name" in r.json()["detail"]


def test_turn_caps_inline_images_like_tool_calls(client: TestClient, sample: Sample) -> None:
    """Issue 18 D8: /v1/turn took 40 inline images where /v1/tools/call caps 16."""
    many = sample.model_copy(update={"images": tuple(sample.images) * 40})
    body = {"sample": many.model_dump(mode="json"), "text": "<answer>yes</answer>"}
    r = client.post("/v1/turn", json=body)
    assert r.status_code == 422, r.text
    assert "at most 16 images" in r.text


def test_openapi_states_the_out_size_bounds_the_server_enforces(client: TestClient) -> None:
    """Issue 18 D14: the schema allowed out_size [0, 0], which the server then rejected."""
    schema = client.get("/openapi.json").json()
    out_size = schema["components"]["schemas"]["ViewSpec"]["properties"]["out_size"]
    assert [i["minimum"] for i in out_size["prefixItems"]] == [1, 1]
    assert [i["maximum"] for i in out_size["prefixItems"]] == [8192, 8192]


def test_uploads_with_junk_are_refused_and_the_store_keeps_its_quota() -> None:
    """Issue 18 D6: junk after the image was stored with it, and uploads were kept forever."""
    import io

    import numpy as np
    from PIL import Image

    def png(seed: int) -> bytes:
        buf = io.BytesIO()
        arr = np.random.default_rng(seed).integers(0, 255, (24, 24), dtype=np.uint8)
        Image.fromarray(arr).save(buf, "PNG")
        return buf.getvalue()

    app = create_app(ServerSettings(store_max_items=2))
    with TestClient(app) as c:
        r = c.post("/v1/images", content=png(0) + b"\0" * 5000, params={"filename": "a.png"})
        assert r.status_code == 400 and "5000 byte(s) after the end" in r.json()["detail"]
        refs = [c.post("/v1/images", content=png(k)).json()["ref"] for k in range(3)]
    store = app.state.service.store
    assert len(store) == 2  # the oldest upload's bytes are gone (its decoded copy may stay
    assert refs[0]["sha256"] not in store and refs[2]["sha256"] in store  # in the image LRU)


def test_volumes_are_served_with_their_slices_and_spacing(client: TestClient) -> None:
    """synthetic3d:// volumes register (bounded) and scroll on the server as in process."""
    uri = "synthetic3d://v1?seed=1&size=64&slices=16&nodule=4%3A30%3A30%3A5%3A2"
    d = client.post("/v1/images/register", json={"ref": {"uri": uri}}).json()
    assert d["num_slices"] == 16 and d["spacing_mm"] == [0.8, 0.8]
    assert d["slice_spacing_mm"] == 2.0
    view = {"bbox_px": [0, 0, 64, 64], "out_size": [64, 64]}
    r = client.post("/v1/tools/call", json={"images": [{"uri": uri}], "views": [view],
                                            "name": "scroll", "arguments": {"slice": 4}})  # fmt: skip
    assert r.status_code == 200 and r.json()["view"]["slice_index"] == 4
    r = client.post("/v1/tools/call", json={"images": [{"uri": uri}], "views": [view],
                                            "name": "set_plane",
                                            "arguments": {"plane": "coronal", "slice": 30}})  # fmt: skip
    got = r.json()["view"]
    assert r.status_code == 200 and got["reformat"] == "coronal" and got["slice_index"] == 30
    assert got["bbox_px"] == [0, 0, 64, 16] and got["out_size"][1] > got["out_size"][0] * 0.5
    too_big = "synthetic3d://v1?seed=1&size=64&slices=100000"
    r = client.post("/v1/images/register", json={"ref": {"uri": too_big}})
    assert r.status_code == 400 and "slices in 9..256" in r.json()["detail"]


def test_a_described_volume_keeps_what_the_tools_need(client: TestClient) -> None:
    """A client that cannot load the image builds its geometry from the description alone
    (``shape_only_image``): slice spacing and acquired plane survive the round trip."""
    from medgym.serving.remote import shape_only_image
    from medgym.serving.schemas import ImageDescription
    from medgym.tools import ImageInfo

    uri = "synthetic3d://v1?seed=1&size=64&slices=16"
    d = ImageDescription.model_validate(
        client.post("/v1/images/register", json={"ref": {"uri": uri}}).json()
    )
    info = ImageInfo.of(shape_only_image(d))
    assert (info.num_slices, info.slice_spacing_mm, info.spacing_mm) == (16, 2.0, (0.8, 0.8))
    assert info.plane_spacing("coronal") == (2.0, 0.8)
    series = d.model_copy(update={"plane": "sagittal"})
    assert ImageInfo.of(shape_only_image(series)).acquired_plane == "sagittal"
