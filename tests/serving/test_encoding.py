from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medgym.errors import ConfigError, DatasetError
from medgym.serving.encoding import ENCODINGS, decode_pixels, encode_pixels, pixel_body


@settings(max_examples=50, deadline=None)
@given(
    pixels=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
    encoding=st.sampled_from(ENCODINGS),
)
def test_round_trip_is_lossless(pixels: np.ndarray, encoding: str) -> None:
    data, _ = encode_pixels(pixels, encoding)
    np.testing.assert_array_equal(decode_pixels(data, encoding, pixels.shape), pixels)


@settings(max_examples=30, deadline=None)
@given(
    gray=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))),
    encoding=st.sampled_from(["png", "webp"]),
)
def test_gray_views_round_trip_through_one_channel(gray: np.ndarray, encoding: str) -> None:
    pixels = np.repeat(gray[:, :, None], 3, axis=2)
    data, _ = encode_pixels(pixels, encoding)
    rgb, _ = encode_pixels(pixels + np.array([0, 0, 1], np.uint8) * (pixels < 255), encoding)
    assert len(data) <= len(rgb) + 64  # one channel written, not three
    np.testing.assert_array_equal(decode_pixels(data, encoding), pixels)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            lambda: encode_pixels(np.zeros((4, 4), np.uint8), "png"), ConfigError, id="2d"
        ),
        pytest.param(
            lambda: encode_pixels(np.zeros((4, 4, 3), np.uint8), "gif"), ConfigError, id="enc"
        ),
        pytest.param(lambda: decode_pixels(b"xx", "png"), DatasetError, id="bad-png"),
        pytest.param(lambda: decode_pixels(b"xx", "raw", (2, 2, 3)), DatasetError, id="short-raw"),
        pytest.param(lambda: decode_pixels(b"xx", "npy"), DatasetError, id="bad-npy"),
    ],
)
def test_errors(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


@settings(max_examples=40, deadline=None)
@given(
    gray=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(1))),
    encoding=st.sampled_from(ENCODINGS),
)
def test_one_channel_pixels_decode_to_rgb(gray: np.ndarray, encoding: str) -> None:
    data, _ = encode_pixels(gray, encoding)
    if encoding == "raw":
        assert len(data) == gray.size  # one byte per pixel on the wire
    got = decode_pixels(data, encoding, gray.shape)
    assert got.shape == (*gray.shape[:2], 3) and got.flags.writeable
    np.testing.assert_array_equal(got, np.repeat(gray, 3, axis=2))


def test_pixel_body_sends_read_only_pixels_without_a_copy() -> None:
    pixels = np.arange(2 * 4 * 1, dtype=np.uint8).reshape(2, 4, 1)
    pixels.setflags(write=False)
    body, media = pixel_body(pixels, "raw")
    assert isinstance(body, memoryview) and np.shares_memory(np.asarray(body), pixels)
    assert media == "application/octet-stream" and bytes(body) == pixels.tobytes()
    writable = pixels.copy()  # may change after the response is built: copied
    assert isinstance(pixel_body(writable, "raw")[0], bytes)
    assert pixel_body(pixels, "png") == encode_pixels(pixels, "png")


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(None, id="none"),
        pytest.param((2, 2), id="2d"),
        pytest.param((2, 2, 2), id="two-channels"),
        pytest.param((0, 2, 3), id="zero-height"),
    ],
)
def test_raw_needs_a_one_or_three_channel_shape(shape: tuple[int, ...] | None) -> None:
    with pytest.raises(ConfigError, match="1 or 3"):
        decode_pixels(b"\x00" * 8, "raw", shape)
