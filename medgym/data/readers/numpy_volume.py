"""NumPy ``.npy`` arrays as images: the preprocessed volumes 3D VQA releases ship (M3D-VQA).

M3D-Data stores each CT as a float array normalised to [0, 1], ``(1, D, H, W)`` (channel first,
then slices). :func:`read_npy` reads the header first (shape and dtype, through
:mod:`numpy.lib.format`, no pickles), checks the voxel budget, then loads the array. Accepted
shapes: ``(H, W)``, ``(D, H, W)`` and ``(1, D, H, W)``; real numbers only. The array carries no
spacing or orientation, so neither is set; the default window spans the values (robust min-max).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from medgym.core.images import MedImage
from medgym.data.readers.common import Source, check_pixel_budget, compact_gray, gray_window
from medgym.errors import DatasetError

__all__ = ["NPY_MAGIC", "read_npy"]

NPY_MAGIC = b"\x93NUMPY"


def read_npy(source: Source, *, name: str, max_pixels: int) -> MedImage:
    """Decode a ``.npy`` array of shape ``(H, W)``, ``(D, H, W)`` or ``(1, D, H, W)``.

    Raises:
        DatasetError: A corrupt header, an object/structured/complex array, another shape, or
            more voxels than ``max_pixels``.
    """
    fobj = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    with fobj as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f, max_header_size=10_000)
        except (ValueError, OSError, SyntaxError, EOFError) as e:
            raise DatasetError(f"{name}: not a readable .npy array header: {e}") from e
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
            raise DatasetError(
                f"{name}: .npy arrays of {dtype} are not images (expected real numbers)"
            )
        dims = tuple(int(n) for n in shape)
        if len(dims) == 4 and dims[0] == 1:
            dims = dims[1:]
        if len(dims) not in (2, 3) or min(dims, default=0) < 1:
            raise DatasetError(
                f"{name}: .npy array of shape {tuple(shape)}; expected (H, W), (D, H, W) or "
                "(1, D, H, W)"
            )
        check_pixel_budget(int(np.prod(dims)), max_pixels, name, "x".join(map(str, dims)),
                           bytes_per_pixel=max(4, dtype.itemsize))  # fmt: skip
        f.seek(0)
        try:
            array = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DatasetError(f"{name}: .npy data cannot be read (truncated?): {e}") from e
    values = compact_gray(array.reshape(dims if len(dims) == 3 else (1, *dims)))
    return MedImage(
        pixels=np.ascontiguousarray(values[..., None]),
        default_window=gray_window(values),
        meta={"format": "NumPy", "frames": int(values.shape[0])},
    )
