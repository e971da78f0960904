"""Pixel encodings for the wire: raw bytes, ``.npy``, PNG (fast compression), WebP lossless.

Every encoding is lossless; ``raw`` and ``npy`` cost a copy, PNG (zlib level 1, run-length
strategy) and WebP lossless trade CPU for size. Pixels travel in the view's own channels: a
grayscale view is one channel, ``(height, width, 1)`` (the server renders it so, see
:func:`medgym.core.view.render_native`; three equal channels given to PNG/WebP are written as
one too), a colour view three. ``raw`` is the ``height * width * channels`` bytes, row-major,
its shape sent alongside (the ``X-Medgym-Shape`` header or ``EncodedImage.shape``). Decoding
always returns a fresh ``(height, width, 3)`` uint8 RGB array, what
:func:`~medgym.core.view.render` gives in-process.

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

from medgym.core.view import gray_to_rgb
from medgym.errors import ConfigError, DatasetError

__all__ = ["ENCODINGS", "MEDIA_TYPES", "Encoding", "decode_pixels", "encode_pixels", "pixel_body"]

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


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or pixels.dtype != np.uint8:
        raise ConfigError(
            "expected (height, width, 3) uint8 RGB or (height, width, 1) gray pixels; got "
            f"{pixels.shape} {pixels.dtype}"
        )
    return pixels


def encode_pixels(pixels: np.ndarray, encoding: str) -> tuple[bytes, str]:
    """Encode ``(H, W, 3)`` RGB or ``(H, W, 1)`` gray pixels; returns ``(bytes, media_type)``.

    ``raw`` and ``npy`` keep the channels they are given (send the shape with ``raw``).

    Raises:
        ConfigError: Unknown encoding or pixels that are not ``(H, W, 3|1)`` uint8.
    """
    pixels = _check_pixels(pixels)
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


def pixel_body(pixels: np.ndarray, encoding: str) -> tuple[bytes | memoryview, str]:
    """:func:`encode_pixels` for a response body: ``raw`` is a view of ``pixels``, not a copy.

    The server's rendered views are read-only (shared through its LRU), so the body can be
    their memory as is; a copy per response measured ~50 us of server CPU per 200 KB view.

    Raises:
        ConfigError: As :func:`encode_pixels`.
    """
    if encoding == "raw" and pixels.flags.c_contiguous and not pixels.flags.writeable:
        return _check_pixels(pixels).data.cast("B"), MEDIA_TYPES["raw"]
    return encode_pixels(pixels, encoding)


def _to_cv(pixels: np.ndarray) -> np.ndarray:
    """One gray channel when the three are equal (a grayscale view), else BGR for OpenCV."""
    if pixels.shape[2] == 1:
        return np.ascontiguousarray(pixels[..., 0])
    r = pixels[..., 0]
    if np.array_equal(r, pixels[..., 1]) and np.array_equal(r, pixels[..., 2]):
        return np.ascontiguousarray(r)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def decode_pixels(data: bytes, encoding: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode bytes made by :func:`encode_pixels` into a fresh RGB array.

    Args:
        data: Encoded bytes.
        encoding: One of :data:`ENCODINGS`.
        shape: ``(height, width, channels)`` as sent, channels 1 (gray) or 3 (RGB); required for
            ``raw`` only.

    Raises:
        DatasetError: The bytes do not decode to the expected pixels.
        ConfigError: Unknown encoding, or ``raw`` without a ``(height, width, 1|3)`` shape.
    """
    if encoding == "raw":
        if shape is None or len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
            raise ConfigError(f"raw pixels need a (height, width, 1 or 3) shape; got {shape!r}")
        expected = int(np.prod(shape))
        if len(data) != expected:
            raise DatasetError(
                f"raw pixels of shape {tuple(shape)} need {expected} bytes; got {len(data)}"
            )
        return _decoded(np.frombuffer(data, dtype=np.uint8).reshape(shape), encoding)
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
    """A fresh RGB copy; one gray channel is expanded to three (as ``render`` does)."""
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or arr.dtype != np.uint8:
        raise DatasetError(
            f"{encoding} pixels decode to {arr.shape} {arr.dtype}; expected (H, W, 3|1) uint8"
        )
    if arr.shape[2] == 1:
        return gray_to_rgb(arr)
    return np.array(arr, copy=True)
