"""Raster images (PNG, JPEG, TIFF, BMP, GIF, WebP...) through Pillow; tifffile for odd TIFFs.

Grayscale stays one channel: 8-bit as display-ready uint8, 16-bit and float keep their values and
get a min-max default window. Colour modes (RGB, RGBA, P, CMYK, YCbCr...) become RGB uint8, alpha
dropped. Every frame of a multi-page file (TIFF pages, GIF frames) becomes a slice, or ``frame``
keeps one. Pillow's lazy ``open`` reads only the header, so the pixel budget is checked before any
pixel data is decoded.
"""

from __future__ import annotations

import logging
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps

from medgym.core.images import MedImage
from medgym.data.readers.common import (
    PixelBudgetError,
    Source,
    UnidentifiedImageError,
    check_frame,
    check_pixel_budget,
    compact_gray,
    gray_window,
    open_binary,
)
from medgym.errors import DatasetError

__all__ = ["TIFF_MAGICS", "read_raster"]

logger = logging.getLogger(__name__)

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# What Pillow raises on malformed or truncated data (it has no single base class for these).
_PIL_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    ArithmeticError,
)
# Pillow's TIFF plugin also raises TypeError/KeyError on damaged tags; tifffile adds its own.
_DECODE_ERRORS: tuple[type[Exception], ...] = (*_PIL_ERRORS, TypeError, KeyError)
_TIFFFILE_ERRORS: tuple[type[Exception], ...] = (*_DECODE_ERRORS, NotImplementedError)
_GRAY_8 = {"1", "L", "LA", "La"}
_GRAY_16 = {"I;16", "I;16L", "I;16B", "I;16N"}
_EXIF_ORIENTATION = 0x0112


def read_raster(source: Source, *, name: str, frame: int | None, max_pixels: int) -> MedImage:
    """Decode a raster image with Pillow (or tifffile for TIFFs Pillow cannot read).

    Raises:
        UnidentifiedImageError: Pillow does not recognise the bytes at all.
        DatasetError: Recognised but truncated, corrupt, too large, or ``frame`` out of range.
    """
    try:
        return _read_pillow(source, name=name, frame=frame, max_pixels=max_pixels)
    except PixelBudgetError:
        raise
    except DatasetError as e:  # incl. UnidentifiedImageError: Pillow may not know this TIFF
        if not _is_tiff(source):
            raise
        try:
            return _read_tifffile(source, name=name, frame=frame, max_pixels=max_pixels)
        except DatasetError as fallback:
            logger.debug("tifffile could not read %s either: %s", name, fallback)
            raise e from None


def _is_tiff(source: Source) -> bool:
    with open_binary(source) as f:
        return f.read(4) in TIFF_MAGICS


def _read_pillow(source: Source, *, name: str, frame: int | None, max_pixels: int) -> MedImage:
    with open_binary(source) as f, warnings.catch_warnings():
        # We enforce our own, explicit pixel budget below; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(f)
        except Image.UnidentifiedImageError as e:
            raise UnidentifiedImageError(f"{name}: not a raster image Pillow recognises") from e
        except Image.DecompressionBombError as e:
            raise PixelBudgetError(
                f"{name}: image is over Pillow's decompression-bomb limit "
                f"({Image.MAX_IMAGE_PIXELS:,} pixels x2); refusing to decode it"
            ) from e
        except _PIL_ERRORS as e:
            raise DatasetError(f"{name}: cannot read image header: {e}") from e
        with im:
            return _decode_frames(im, name=name, frame=frame, max_pixels=max_pixels)


def _decode_frames(im: Image.Image, *, name: str, frame: int | None, max_pixels: int) -> MedImage:
    fmt, mode = im.format, im.mode
    try:
        n_frames = int(getattr(im, "n_frames", 1) or 1)  # walks a TIFF's page chain
        arrays = _frames(im, name=name, frame=frame, n_frames=n_frames, max_pixels=max_pixels)
    except DatasetError:
        raise
    except _DECODE_ERRORS as e:
        raise DatasetError(f"{name}: {fmt or 'image'} data is truncated or corrupt: {e}") from e
    return _assemble(arrays, name=name, meta={"format": fmt, "mode": mode, "frames": n_frames})


def _bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of the array a Pillow mode decodes to (colour kept as three bands)."""
    if mode in ("I", "F", "I;32", "I;32B"):
        return 4
    if mode.startswith("I;16"):
        return 2
    return 3 if mode not in ("1", "L", "LA", "P", "PA") else 1


def _frames(
    im: Image.Image, *, name: str, frame: int | None, n_frames: int, max_pixels: int
) -> list[np.ndarray]:
    check_frame(frame, n_frames, name)
    indices = [frame] if frame is not None else list(range(n_frames))
    w, h = im.size
    per_pixel = _bytes_per_pixel(im.mode)
    check_pixel_budget(w * h * len(indices), max_pixels, name, f"{w}x{h} x {len(indices)} frame(s)",
                       bytes_per_pixel=per_pixel)  # fmt: skip
    arrays: list[np.ndarray] = []
    total = 0
    for i in indices:
        im.seek(i)
        w, h = im.size  # pages of a TIFF may differ in size
        total += w * h
        check_pixel_budget(total, max_pixels, name, f"frames up to {i} ({w}x{h} each)",
                           bytes_per_pixel=per_pixel)  # fmt: skip
        page = im
        if n_frames == 1 and im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            page = ImageOps.exif_transpose(im)
        arrays.append(_to_array(page, name))
    return arrays


def _to_array(im: Image.Image, name: str) -> np.ndarray:
    """One frame as ``(H, W)`` grayscale (any dtype) or ``(H, W, 3)`` RGB uint8."""
    mode = im.mode
    if mode in _GRAY_8:
        return np.asarray(im.convert("L"))
    if mode in _GRAY_16:
        return np.asarray(im).astype(np.uint16)  # native byte order
    if mode in ("I", "F"):
        return compact_gray(np.asarray(im))
    if mode == "RGB":
        return np.asarray(im)
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError as e:
        raise DatasetError(f"{name}: unsupported image mode {mode!r}") from e


def _assemble(arrays: list[np.ndarray], *, name: str, meta: dict[str, object]) -> MedImage:
    if not arrays:
        raise DatasetError(f"{name}: image has no frames")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(
            f"{name}: frames differ in size or colour ({sorted(shapes)}); pass frame= to read one"
        )
    if len({a.dtype for a in arrays}) > 1:
        arrays = [a.astype(np.float32) for a in arrays]
    stack = np.stack(arrays)
    if stack.ndim == 3:
        stack = stack[:, :, :, None]
    window = None if stack.dtype == np.uint8 else gray_window(stack)
    return MedImage(pixels=np.ascontiguousarray(stack), default_window=window, meta=meta)


def _read_tifffile(source: Source, *, name: str, frame: int | None, max_pixels: int) -> MedImage:
    try:
        import tifffile
    except ImportError as e:
        raise DatasetError(f"{name}: Pillow cannot read this TIFF and tifffile is missing") from e
    errors: tuple[type[Exception], ...] = (tifffile.TiffFileError, *_TIFFFILE_ERRORS)
    with open_binary(source) as f:
        try:
            with tifffile.TiffFile(f) as tif:
                pages = tif.pages
                if len(pages) == 0:
                    raise DatasetError(f"{name}: TIFF file has no pages")
                check_frame(frame, len(pages), name)
                indices = [frame] if frame is not None else list(range(len(pages)))
                shapes = [pages[i].shape for i in indices]
                count = sum(int(np.prod(s[:2] if s[-1] in (3, 4) else s[-2:])) for s in shapes)
                check_pixel_budget(count, max_pixels, name, f"{len(indices)} TIFF page(s)")
                arrays = [_tiff_page(pages[i].asarray(), name) for i in indices]
        except DatasetError:
            raise
        except errors as e:
            raise DatasetError(f"{name}: TIFF data is truncated or corrupt: {e}") from e
    return _assemble(arrays, name=name, meta={"format": "TIFF", "frames": len(indices)})


def _tiff_page(a: np.ndarray, name: str) -> np.ndarray:
    """A tifffile page as ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8 (planar RGB moved last)."""
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        return compact_gray(a)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise DatasetError(f"{name}: unsupported TIFF page shape {a.shape}")
    rgb = a[:, :, :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if np.issubdtype(rgb.dtype, np.floating) and rgb.size and rgb.min() >= 0 and rgb.max() <= 1:
        return np.round(rgb * 255).astype(np.uint8)
    if rgb.dtype == np.uint16:
        return (rgb >> 8).astype(np.uint8)
    raise DatasetError(f"{name}: unsupported TIFF colour data {rgb.dtype} (expected 8/16 bit)")
