"""NIfTI-1/2 volumes (``.nii``, ``.nii.gz``) through nibabel.

The volume is brought to the closest canonical (RAS+) orientation with
:func:`nibabel.as_closest_canonical`, then cut into 2-D slices along ``axis`` (0 sagittal,
1 coronal, 2 axial, the default). Slices are shown in the radiological convention: the patient's
right on the image's left, anterior (axial) or superior (coronal, sagittal) at the top; sagittal
slices have anterior on the left. Slice ``k`` is the ``k``-th along the canonical axis (inferior
to superior for axial). A 4-D (or higher) file keeps only its first volume (``[..., 0]``): the
viewer shows anatomy, not time series. Values keep their dtype (scaling from ``scl_slope`` /
``scl_inter`` applied) and get a robust min-max default window over the whole volume, so every
slice of a volume renders alike.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from typing import Any

import numpy as np

from medgym.core.images import MedImage
from medgym.data.readers.common import (
    Source,
    check_frame,
    check_pixel_budget,
    compact_gray,
    gray_window,
)
from medgym.errors import DatasetError, DependencyNotInstalled

__all__ = ["NIFTI_SUFFIXES", "is_nifti_header", "read_nifti"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_PLANES = ("sagittal", "coronal", "axial")
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001}


def _nibabel() -> Any:
    try:
        import nibabel
    except ImportError as e:
        raise DependencyNotInstalled.for_extra("nibabel", "data") from e
    return nibabel


def is_nifti_header(head: bytes) -> bool:
    """Whether uncompressed ``head`` (at least 348 bytes) starts a NIfTI-1 or NIfTI-2 header."""
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return True
    return len(head) >= 8 and head[4:8] in (b"n+2\x00", b"ni2\x00")


def read_nifti(
    source: Source, *, name: str, frame: int | None, axis: int, max_pixels: int
) -> MedImage:
    """Decode a NIfTI volume into ``(slices, H, W, 1)`` (see the module docstring).

    Raises:
        DatasetError: Corrupt or truncated file, too many voxels, ``frame`` out of range.
    """
    nib = _nibabel()
    from nibabel.filebasedimages import ImageFileError
    from nibabel.orientations import OrientationError
    from nibabel.spatialimages import HeaderDataError

    errors: tuple[type[Exception], ...] = (
        ImageFileError,
        HeaderDataError,
        OrientationError,
        OSError,
        EOFError,
        ValueError,
        zlib.error,
        struct.error,
        IndexError,
        TypeError,
        KeyError,
        AttributeError,
        ArithmeticError,
    )
    try:
        img = _open(nib, source)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            kind = type(img).__name__
            raise DatasetError(f"{name}: {kind} files are not supported (expected a NIfTI volume)")
        shape = tuple(int(n) for n in img.shape)
        if not 2 <= len(shape) <= 7 or min(shape) < 1:
            raise DatasetError(f"{name}: NIfTI image has unsupported shape {shape}")
        spatial = (*shape, 1)[:3]
        check_pixel_budget(int(np.prod(spatial)), max_pixels, name, "x".join(map(str, spatial)),
                           bytes_per_pixel=8)  # fmt: skip  # read as float64
        units = img.header.get_xyzt_units()[0]
        if len(shape) == 2:
            img = nib.Nifti1Image(np.asanyarray(img.dataobj)[:, :, None], img.affine)
        elif len(shape) > 3:
            img = img.slicer[(slice(None),) * 3 + (0,) * (len(shape) - 3)]
        img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
    except DatasetError:
        raise
    except errors as e:
        raise DatasetError(f"{name}: cannot read NIfTI data (truncated or corrupt?): {e}") from e
    if data.dtype.fields is not None:
        raise DatasetError(f"{name}: NIfTI colour/structured data ({data.dtype}) is not supported")
    values = compact_gray(data)
    window = gray_window(values)
    # (S, a, b) with a, b the two remaining canonical axes; show b top-down, a right-to-left.
    slices = np.moveaxis(values, axis, 0).transpose(0, 2, 1)[:, ::-1, ::-1]
    check_frame(frame, slices.shape[0], name, unit="slice")
    if frame is not None:
        slices = slices[frame : frame + 1]
    a, b = (i for i in range(3) if i != axis)
    scale = _UNIT_TO_MM.get(units, 1.0)
    spacing = (zooms[b] * scale, zooms[a] * scale)
    meta: dict[str, object] = {
        "format": "NIfTI",
        "plane": _PLANES[axis],
        "axis": axis,
        "volume_shape": list(spatial),
        "frames": int(values.shape[axis]),
    }
    if len(shape) > 3:
        meta["volumes_in_file"] = int(np.prod(shape[3:]))
    return MedImage(
        pixels=np.ascontiguousarray(slices[:, :, :, None]),
        spacing_mm=spacing if all(s > 0 for s in spacing) else None,
        slice_spacing_mm=zooms[axis] * scale if zooms[axis] * scale > 0 else None,
        default_window=window,
        meta=meta,
    )


def _open(nib: Any, source: Source) -> Any:
    if not isinstance(source, bytes):
        return nib.load(str(source))
    from nibabel.fileholders import FileHolder

    fobj: io.IOBase = io.BytesIO(source)
    if source[:2] == b"\x1f\x8b":
        fobj = gzip.GzipFile(fileobj=fobj)
    head = fobj.read(4)
    fobj.seek(0)
    sizeof = struct.unpack("<i", head)[0] if len(head) == 4 else 0
    if sizeof not in (348, 540) and len(head) == 4:
        sizeof = struct.unpack(">i", head)[0]
    klass = nib.Nifti2Image if sizeof == 540 else nib.Nifti1Image
    holder = FileHolder(fileobj=fobj)
    return klass.from_file_map({"header": holder, "image": holder})
