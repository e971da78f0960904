"""Pixel encodings for the wire: raw bytes, ``.npy``, PNG (fast compression), WebP lossless.

Every encoding is lossless; ``raw`` and ``npy`` cost a copy, PNG (zlib level 1, run-length
strategy) and WebP lossless trade CPU for size. A view of a grayscale image (three equal channels)
is written as one gray channel, a third of the work; decoding returns a fresh ``(height, width,
3)`` uint8 RGB array either way.

Example:
    >>> import numpy as np
    >>> a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    >>> data, media = encode_pixels(a, "png")
    >>> bool((decode_pixels(data, "png") == a).all()), media
    (True, 'image/png')
"""

from __future__ import annotations

import io
from typing import Literal

import cv2
import numpy as np

from medgym.errors import ConfigError, DatasetError

__all__ = ["ENCODINGS", "MEDIA_TYPES", "Encoding", "decode_pixels", "encode_pixels"]

Encoding = Literal["raw", "npy", "png", "webp"]

#: Media type of each encoding.
MEDIA_TYPES: dict[str, str] = {
    "raw": "application/octet-stream",
    "npy": "application/x-npy",
    "png": "image/png",
    "webp": "image/webp",
}
ENCODINGS: tuple[str, ...] = tuple(MEDIA_TYPES)

_PNG_FAST = [
    cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
]  # fmt: skip
_WEBP_LOSSLESS = [cv2.IMWRITE_WEBP_QUALITY, 101]  # > 100 selects lossless in OpenCV


def _check_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ConfigError(
            f"expected (height, width, 3) uint8 RGB pixels; got {pixels.shape} {pixels.dtype}"
        )
    return pixels


def encode_pixels(pixels: np.ndarray, encoding: str) -> tuple[bytes, str]:
    """Encode RGB pixels; returns ``(bytes, media_type)``.

    Raises:
        ConfigError: Unknown encoding or pixels that are not ``(H, W, 3)`` uint8.
    """
    pixels = _check_rgb(pixels)
    if encoding == "raw":
        return np.ascontiguousarray(pixels).tobytes(), MEDIA_TYPES["raw"]
    if encoding == "npy":
        out = io.BytesIO()
        np.save(out, np.ascontiguousarray(pixels), allow_pickle=False)
        return out.getvalue(), MEDIA_TYPES["npy"]
    if encoding in ("png", "webp"):
        params = _PNG_FAST if encoding == "png" else _WEBP_LOSSLESS
        ok, buf = cv2.imencode(f".{encoding}", _to_cv(pixels), params)
        if not ok:
            raise ConfigError(f"OpenCV could not encode a {pixels.shape} view as {encoding}")
        return buf.tobytes(), MEDIA_TYPES[encoding]
    raise ConfigError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def _to_cv(pixels: np.ndarray) -> np.ndarray:
    """One gray channel when the three are equal (a grayscale view), else BGR for OpenCV."""
    r = pixels[..., 0]
    if np.array_equal(r, pixels[..., 1]) and np.array_equal(r, pixels[..., 2]):
        return np.ascontiguousarray(r)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def decode_pixels(data: bytes, encoding: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode bytes made by :func:`encode_pixels` into a fresh RGB array.

    Args:
        data: Encoded bytes.
        encoding: One of :data:`ENCODINGS`.
        shape: ``(height, width, 3)``; required for ``raw`` only.

    Raises:
        DatasetError: The bytes do not decode to the expected pixels.
        ConfigError: Unknown encoding, or ``raw`` without ``shape``.
    """
    if encoding == "raw":
        if shape is None or len(shape) != 3:
            raise ConfigError(f"raw pixels need a (height, width, 3) shape; got {shape!r}")
        expected = int(np.prod(shape))
        if len(data) != expected:
            raise DatasetError(
                f"raw pixels of shape {shape} need {expected} bytes; got {len(data)}"
            )
        return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
    if encoding == "npy":
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DatasetError(f"cannot decode .npy pixels: {e}") from e
        return _decoded(arr, encoding)
    if encoding in ("png", "webp"):
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"cannot decode {encoding} pixels ({len(data)} bytes)")
        return _decoded(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), encoding)
    raise ConfigError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def _decoded(arr: np.ndarray, encoding: str) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise DatasetError(
            f"{encoding} pixels decode to {arr.shape} {arr.dtype}; expected (H, W, 3) uint8"
        )
    return np.array(arr, copy=True)
