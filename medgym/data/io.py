"""Decode image files and bytes into :class:`~medgym.core.images.MedImage`.

The format is told by content, not by name: DICOM by ``DICM`` at offset 128 (or, for files
written without the preamble, by a plausible first element and a pydicom parse), NIfTI by its
header magic (``.nii``/``.nii.gz``, gzip included), everything else by Pillow (PNG, JPEG, TIFF,
BMP, GIF, WebP...), with tifffile as a fallback for TIFFs Pillow cannot read. The per-format rules
(windows, MONOCHROME1, slicing, colour) live in :mod:`medgym.data.readers`.

Every failure is a :class:`~medgym.errors.DatasetError` that names the file and says what was
expected; no PIL, pydicom or nibabel exception escapes. Before any pixel data is decoded, the
pixel count the header declares is checked against :func:`max_pixels` (decompression bombs).

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("L", (16, 8), 7).save(buf, format="PNG")
    >>> read_image_bytes(buf.getvalue(), name="tiny.png").size
    (16, 8)
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

from medgym.core.images import MedImage
from medgym.data.readers.common import Source, UnidentifiedImageError, open_binary
from medgym.data.readers.dicom import looks_like_raw_dicom, read_dicom
from medgym.data.readers.dicom_series import read_dicom_series
from medgym.data.readers.nifti import NIFTI_SUFFIXES, is_nifti_header, read_nifti
from medgym.data.readers.numpy_volume import NPY_MAGIC, read_npy
from medgym.data.readers.raster import read_raster
from medgym.errors import ConfigError, DatasetError
from medgym.settings import MAX_PIXELS, get_settings

__all__ = ["MAX_PIXELS", "looks_like_image", "max_pixels", "read_image_bytes", "read_image_file"]

logger = logging.getLogger(__name__)


_HEAD_BYTES = 1024
# Magic numbers, to say "truncated PNG" rather than "unrecognised" when Pillow gives up early.
_MAGICS = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
    b"GIF8": "GIF",
    b"\x1f\x8b": "gzip (not NIfTI)",
}
_EXPECTED = "an image (PNG, JPEG, TIFF, BMP, GIF, WebP, DICOM, NIfTI or a NumPy .npy array)"


def looks_like_image(head: bytes, name: str = "") -> bool:
    """Whether the first bytes of a file (512 are plenty) start a format medgym reads.

    A cheap check loaders run at load time, so a file that is not an image fails there and not
    in the middle of an episode; a truncated image still fails only when it is decoded.
    """
    if any(head.startswith(m) for m in _MAGICS):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if is_nifti_header(head) or looks_like_raw_dicom(head) or head.startswith(NPY_MAGIC):
        return True
    lower = name.lower()
    return lower.endswith((".dcm", ".dicom")) or lower.endswith(NIFTI_SUFFIXES)


def max_pixels() -> int:
    """The pixel limit in force: ``MEDGYM_MAX_PIXELS`` if set, else :data:`MAX_PIXELS`.

    Raises:
        ConfigError: ``MEDGYM_MAX_PIXELS`` is not a positive integer.
    """
    return get_settings().max_pixels


def read_image_file(path: Path, *, frame: int | None = None, axis: int | None = None) -> MedImage:
    """Decode the image file at ``path``.

    Args:
        path: A PNG/JPEG/TIFF/BMP/GIF/WebP, DICOM (``.dcm`` or none) or NIfTI file, or a
            folder holding one DICOM series (one file per slice; see
            :func:`~medgym.data.readers.dicom_series.read_dicom_series`).
        frame: Keep only this frame (multi-frame DICOM, multi-page TIFF) or slice (NIfTI).
        axis: NIfTI only: the canonical axis slices are cut along (0 sagittal, 1 coronal,
            2 axial); ``None`` means axial.

    Returns:
        The decoded image; ``meta["format"]`` says which reader was used.

    Raises:
        DatasetError: The file is missing, unreadable, not an image, corrupt or too large.
        ConfigError: ``frame`` or ``axis`` is out of its domain.
    """
    path = Path(path)
    _check_args(frame, axis)
    if not path.exists():
        raise DatasetError(f"image file {path} does not exist; expected {_EXPECTED}")
    if path.is_dir():
        if frame is not None or axis is not None:
            raise ConfigError(
                f"{path} is a DICOM series folder: frame= and axis= apply to one file; scroll "
                "the volume's slices instead"
            )
        return read_dicom_series(path, name=str(path), max_pixels=max_pixels())
    if not path.is_file():
        raise DatasetError(f"image path {path} is not a file; expected {_EXPECTED}")
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as e:
        raise DatasetError(f"cannot read image file {path}: {e}") from e
    return _dispatch(path, head, name=str(path), frame=frame, axis=axis)


def read_image_bytes(
    data: bytes, *, name: str = "<bytes>", frame: int | None = None, axis: int | None = None
) -> MedImage:
    """Decode an image held in memory (an upload, a parquet cell, the image store).

    Args:
        data: The file's bytes.
        name: Shown in error messages; a ``.nii``/``.nii.gz`` suffix is also a format hint.
        frame: As in :func:`read_image_file`.
        axis: As in :func:`read_image_file`.

    Raises:
        DatasetError: The bytes are empty, not an image, corrupt or too large.
        ConfigError: ``data`` is not bytes, or ``frame``/``axis`` is out of its domain.
    """
    _check_args(frame, axis)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigError(f"{name}: expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise DatasetError(f"{name}: no bytes to decode; expected {_EXPECTED}")
    return _dispatch(data, data[:_HEAD_BYTES], name=name, frame=frame, axis=axis)


def _check_args(frame: int | None, axis: int | None) -> None:
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
        raise ConfigError(f"frame must be an integer >= 0 or None; got {frame!r}")
    if axis is not None and axis not in (0, 1, 2):
        raise ConfigError(f"axis must be 0, 1, 2 or None (axial); got {axis!r}")


def _dispatch(
    source: Source, head: bytes, *, name: str, frame: int | None, axis: int | None
) -> MedImage:
    limit = max_pixels()
    if len(head) >= 132 and head[128:132] == b"DICM":
        return read_dicom(source, name=name, frame=frame, max_pixels=limit)
    if _is_nifti(source, head, name):
        axis = 2 if axis is None else axis
        return read_nifti(source, name=name, frame=frame, axis=axis, max_pixels=limit)
    if head.startswith(NPY_MAGIC):
        if frame is not None or axis is not None:
            raise ConfigError(f"{name}: frame= and axis= do not apply to .npy arrays")
        return read_npy(source, name=name, max_pixels=limit)
    try:
        return read_raster(source, name=name, frame=frame, max_pixels=limit)
    except UnidentifiedImageError as e:
        if looks_like_raw_dicom(head):
            logger.debug("%s: not a raster image; trying DICOM without preamble", name)
            return read_dicom(source, name=name, frame=frame, max_pixels=limit, force=True)
        fmt = next((f for magic, f in _MAGICS.items() if head.startswith(magic)), None)
        if fmt is not None:
            raise DatasetError(
                f"{name}: {fmt} data that cannot be decoded (truncated or corrupt?); "
                f"expected {_EXPECTED}"
            ) from e
        raise DatasetError(f"{name}: unrecognised data; expected {_EXPECTED}") from e


def _is_nifti(source: Source, head: bytes, name: str) -> bool:
    if is_nifti_header(head):
        return True
    if head[:2] != b"\x1f\x8b":
        return name.lower().endswith(NIFTI_SUFFIXES) and len(head) < 348
    try:
        with open_binary(source) as raw, gzip.GzipFile(fileobj=raw) as gz:
            return is_nifti_header(gz.read(352))
    except (OSError, EOFError, zlib.error):
        return name.lower().endswith(NIFTI_SUFFIXES)
