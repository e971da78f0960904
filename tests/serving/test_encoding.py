from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medgym.errors import ConfigError, DatasetError
from medgym.serving.encoding import ENCODINGS, decode_pixels, encode_pixels


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
            lambda: encode_pixels(np.zeros((4, 4), np.uint8), "png"), ConfigError, id="gray"
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
