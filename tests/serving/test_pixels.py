"""Pixels on the wire: a gray view is one channel, a colour view three; every path agrees."""

from __future__ import annotations

import io
import json
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image

from medgym.core.images import ImageRef
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec, render
from medgym.data.cache import load_image
from medgym.serving.app import create_app
from medgym.serving.client import decode_image
from medgym.serving.encoding import decode_pixels
from medgym.serving.schemas import EncodedImage
from medgym.serving.settings import ServerSettings

RAW = {"Accept": "application/octet-stream"}


def _rgb_png(width: int = 64, height: int = 48) -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zoom(ref: dict[str, Any], width: int, height: int, encoding: str) -> dict[str, Any]:
    return {
        "images": [ref], "views": [{"bbox_px": [0, 0, width, height], "out_size": [448, 448]}],
        "name": "zoom_in", "arguments": {"bbox_2d": [10, 20, 200, 180]}, "encoding": encoding,
    }  # fmt: skip


def _shape(r: Response) -> tuple[int, int, int]:
    h, w, c = (int(n) for n in r.headers["x-medgym-shape"].split(","))
    return h, w, c


def _view(r: Response) -> ViewSpec:
    return ViewSpec.model_validate(json.loads(r.headers["x-medgym-result"])["view"])


@pytest.mark.parametrize("cache", [128, 0], ids=["render-cache", "no-render-cache"])
def test_gray_zoom_is_one_channel_and_decodes_to_render(
    settings: ServerSettings, sample: Sample, cache: int
) -> None:
    app = create_app(ServerSettings(**{**settings.model_dump(), "render_cache_size": cache}))
    image = load_image(sample.images[0])
    body = _zoom(sample.images[0].model_dump(mode="json"), image.width, image.height, "raw")
    with TestClient(app) as c:
        # The first call renders in a worker thread; with the cache on, the second is served
        # on the event loop from the rendered-view LRU. Same answer either way.
        first, again = (c.post("/v1/tools/call", json=body, headers=RAW) for _ in range(2))
    assert first.status_code == 200, first.text
    h, w, channels = _shape(first)
    assert channels == 1 and len(first.content) == h * w
    assert again.content == first.content
    assert again.headers["x-medgym-result"] == first.headers["x-medgym-result"]
    got = decode_pixels(first.content, "raw", (h, w, channels))
    np.testing.assert_array_equal(got, render(image, _view(first)))


def test_colour_zoom_is_three_channels(client: TestClient) -> None:
    d = client.post("/v1/images", content=_rgb_png(), params={"filename": "c.png"}).json()
    assert d["channels"] == 3
    body = _zoom(d["ref"], d["width"], d["height"], "raw")
    r = client.post("/v1/tools/call", json=body, headers=RAW)
    assert r.status_code == 200, r.text
    h, w, channels = _shape(r)
    assert channels == 3 and len(r.content) == h * w * 3
    image = load_image(ImageRef.model_validate(d["ref"]))
    np.testing.assert_array_equal(
        decode_pixels(r.content, "raw", (h, w, 3)), render(image, _view(r))
    )


@pytest.mark.parametrize("encoding", ["raw", "npy", "png", "webp"])
def test_inline_image_shape_is_as_sent(client: TestClient, sample: Sample, encoding: str) -> None:
    image = load_image(sample.images[0])
    body = _zoom(sample.images[0].model_dump(mode="json"), image.width, image.height, encoding)
    r = client.post("/v1/tools/call", json=body)  # no Accept: pixels inline, base64
    assert r.status_code == 200, r.text
    encoded = EncodedImage.model_validate(r.json()["image"])
    assert encoded.shape[2] == 1
    view = ViewSpec.model_validate(r.json()["view"])
    np.testing.assert_array_equal(decode_image(encoded), render(image, view))


def test_render_endpoint_repeats_itself(client: TestClient, sample: Sample) -> None:
    image = load_image(sample.images[0])
    view = {"bbox_px": [100, 50, 900, 700], "out_size": [320, 260], "rot90": 1}
    body = {"images": [sample.images[0].model_dump(mode="json")], "view": view, "encoding": "raw"}
    first, again = (client.post("/v1/render", json=body) for _ in range(2))
    assert first.status_code == 200, first.text
    assert _shape(first) == (260, 320, 1) and again.content == first.content
    got = decode_pixels(first.content, "raw", _shape(first))
    np.testing.assert_array_equal(got, render(image, ViewSpec.model_validate(view)))


def test_opencv_threads_follow_the_setting_while_serving(settings: ServerSettings) -> None:
    before = cv2.getNumThreads()
    app = create_app(ServerSettings(**{**settings.model_dump(), "opencv_threads": 1}))
    with TestClient(app):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before


def test_rendered_views_are_bounded_in_bytes(settings: ServerSettings, sample: Sample) -> None:
    """Large out_size renders (D3): the rendered-view cache stays under render_cache_bytes."""
    budget = 3 * 1024 * 1024
    app = create_app(ServerSettings(**{**settings.model_dump(), "render_cache_bytes": budget}))
    ref = sample.images[0].model_dump(mode="json")
    image = load_image(sample.images[0])
    with TestClient(app) as c:
        for k in range(6):
            view = {"bbox_px": [k, 0, image.width - k, image.height], "out_size": [1024, 1024]}
            r = c.post("/v1/render", json={"images": [ref], "view": view}, headers=RAW)
            assert r.status_code == 200, r.text
        cache = app.state.service._rendered
        assert 0 < cache.bytes <= budget and len(cache) < 6
