"""Pieces every format reader shares: the pixel budget, frame picking and dtype compaction."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import ValidationError

from medgym.core.images import Window, min_max_window
from medgym.errors import DatasetError

__all__ = [
    "PixelBudgetError",
    "Source",
    "UnidentifiedImageError",
    "check_frame",
    "check_pixel_budget",
    "compact_gray",
    "gray_window",
    "open_binary",
]

Source = Path | bytes
"""A file on disk or the bytes of one."""


class UnidentifiedImageError(DatasetError):
    """The bytes are not in a format this reader understands (the dispatcher tries the next)."""


class PixelBudgetError(DatasetError):
    """The file declares more pixels than the decompression-bomb limit allows."""


def open_binary(source: Source) -> BinaryIO:
    """A binary file object over ``source`` (the caller closes it)."""
    if isinstance(source, Path):
        return source.open("rb")
    return io.BytesIO(source)


def check_pixel_budget(
    count: int, limit: int, name: str, what: str, *, bytes_per_pixel: int = 1
) -> None:
    """Refuse, before any decoding, more than ``limit`` pixels or the decoded-bytes budget.

    Args:
        count: Pixels (per channel-less grid point, over all kept frames) the file declares.
        limit: Largest allowed count (see :func:`medgym.data.io.max_pixels`).
        name: File name for the message.
        what: How the size was worked out, e.g. ``"30000x30000"``.
        bytes_per_pixel: Bytes the decoded array takes per pixel (channels x item size).

    Raises:
        PixelBudgetError: When ``count`` is over ``limit`` or the decoded bytes over the budget.
    """
    if count > limit:
        raise PixelBudgetError(
            f"{name}: image declares {what} = {count:,} pixels, over the limit of {limit:,} "
            "(a guard against decompression bombs); raise MEDGYM_MAX_PIXELS if the file is "
            "trusted, or pass frame= to read one frame"
        )
    from medgym.settings import get_settings

    budget = get_settings().max_image_bytes
    if count * bytes_per_pixel > budget:
        raise PixelBudgetError(
            f"{name}: image declares {what} = {count:,} pixels of {bytes_per_pixel} byte(s), "
            f"{count * bytes_per_pixel:,} bytes decoded, over the budget of {budget:,} "
            "(MEDGYM_MAX_IMAGE_BYTES); raise it if the file is trusted, or pass frame="
        )


def check_frame(frame: int | None, count: int, name: str, unit: str = "frame") -> None:
    """Raise :class:`DatasetError` unless ``frame`` is ``None`` or a valid index below ``count``."""
    if frame is not None and not 0 <= frame < count:
        raise DatasetError(
            f"{name}: {unit} {frame} requested, but the file has {count} {unit}(s) "
            f"(valid: 0..{count - 1})"
        )


def compact_gray(arr: np.ndarray) -> np.ndarray:
    """Store grayscale values in the smallest dtype the renderer handles natively.

    Integral values go to uint8/uint16/int16 when they fit; everything else to float32. NaN and
    infinities (no-data voxels of float volumes) become the lowest/highest finite value, so
    windows and rendering stay defined. Keeps memory down in the image cache.
    """
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    if a.dtype in (np.uint8, np.uint16, np.int16):
        return a
    if np.issubdtype(a.dtype, np.complexfloating) or a.dtype.fields is not None:
        raise DatasetError(f"{a.dtype} pixels are not supported (expected real numbers)")
    if a.size == 0:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        a = _finite(a)
        if a.dtype == np.float32 or not np.array_equal(a, np.round(a)):
            return _float32(a)
    lo, hi = float(a.min()), float(a.max())
    for dtype in (np.uint8, np.uint16, np.int16):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return a.astype(dtype)
    return _float32(a)


def gray_window(values: np.ndarray) -> Window:
    """:func:`~medgym.core.images.min_max_window`, also for extreme or constant values."""
    try:
        return min_max_window(values)
    except ValidationError:  # e.g. lo + 1 == lo for huge floats: no positive width
        lo = float(values.min())
        return Window(level=lo, width=max(1.0, abs(lo) * 1e-6))


def _finite(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a)
    if ok.all():
        return a
    values = a[ok]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    return np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)


def _float32(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float32:
        return a
    limit = float(np.finfo(np.float32).max)
    return np.clip(a, -limit, limit).astype(np.float32)
