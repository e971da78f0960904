"""A DICOM series (a folder of single-slice files) as one volume.

Scanners write a CT or MR study as one file per slice. :func:`read_dicom_series` reads the
headers of every file in a folder (no pixels), checks that they form one regular stack, sorts the
slices along the stack's normal by ``ImagePositionPatient`` (``InstanceNumber`` where no file has
a position), then decodes each slice with :func:`~medgym.data.readers.dicom.read_dicom` (modality
LUT, so CT is in HU) and stacks them into ``(slices, H, W, 1)``. The slice spacing is measured
from the positions (``SpacingBetweenSlices`` or ``SliceThickness`` only when no position is
given) and kept in :attr:`MedImage.slice_spacing_mm`.

Refused with a :class:`~medgym.errors.DatasetError` that names the files involved:

- files of more than one series (``SeriesInstanceUID``), or unreadable ones;
- slices of different sizes, pixel spacings or orientations (a localiser is not a stack);
- two slices at the same position, a gap where slices are missing (a step a whole multiple of
  the series' spacing), or steps that differ by more than 10% (an irregular stack).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medgym.core.images import MedImage
from medgym.data.readers.common import check_pixel_budget, compact_gray, gray_window
from medgym.data.readers.dicom import _PARSE_ERRORS, _pydicom, file_window, read_dicom
from medgym.errors import DatasetError

__all__ = ["MAX_SERIES_FILES", "read_dicom_series"]

#: Most files one series folder may hold (each header is read before anything is decoded).
MAX_SERIES_FILES = 4096
#: Relative tolerance of the slice steps, orientation cosines and pixel spacings.
_TOLERANCE = 0.1
_SKIP = {"DICOMDIR"}


@dataclass(frozen=True)
class _Slice:
    path: Path
    series: str
    size: tuple[int, int]
    spacing: tuple[float, float] | None
    orientation: np.ndarray | None
    position: np.ndarray | None
    instance: int | None
    thickness: float | None
    header: Any


def read_dicom_series(folder: Path, *, name: str, max_pixels: int) -> MedImage:
    """Decode the DICOM series in ``folder`` into one volume (see the module docstring).

    Args:
        folder: A folder holding the slice files of one series (hidden files and ``DICOMDIR``
            are ignored; sub-folders are not read).
        name: Shown in error messages.
        max_pixels: Most voxels the volume may hold (checked before any pixel is decoded).

    Returns:
        The volume, slice 0 first along the stack normal; ``meta`` holds ``format``
        (``DICOM series``), ``series_uid``, ``plane``, ``frames`` and the sorted file names.

    Raises:
        DatasetError: An empty folder, a file that is not DICOM, a mixed, irregular or
            incomplete series, or a volume over the pixel budget.
    """
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        and p.name not in _SKIP
    )  # fmt: skip
    if not files:
        raise DatasetError(f"{name}: the folder holds no files; expected a DICOM series")
    if len(files) > MAX_SERIES_FILES:
        raise DatasetError(
            f"{name}: {len(files)} files, over the limit of {MAX_SERIES_FILES} slices per series"
        )
    slices = [_header(p, name) for p in files]
    _check_one_series(slices, name)
    _check_same_grid(slices, name)
    ordered, step = _order(slices, name)
    rows, cols = ordered[0].size
    check_pixel_budget(len(ordered) * rows * cols, max_pixels, name,
                       f"{cols}x{rows} x {len(ordered)} slices", bytes_per_pixel=8)  # fmt: skip
    planes = [
        read_dicom(s.path, name=f"{name}/{s.path.name}", frame=None, max_pixels=max_pixels)
        for s in ordered
    ]
    for s, img in zip(ordered, planes, strict=True):
        if img.num_slices != 1 or img.is_color:
            raise DatasetError(
                f"{name}/{s.path.name}: a series slice must be one grayscale frame; got "
                f"{img.num_slices} frame(s), {'colour' if img.is_color else 'grayscale'}"
            )
    volume = np.concatenate([np.asarray(img.pixels, dtype=np.float64) for img in planes])
    values = compact_gray(volume)
    mid = len(ordered) // 2
    # The file's own window (inverted for MONOCHROME1 by read_dicom), else one over the volume.
    window = planes[mid].default_window if file_window(ordered[mid].header) else None
    window = window or gray_window(values)
    meta = dict(planes[mid].meta)
    meta.update(
        format="DICOM series",
        series_uid=ordered[0].series,
        frames=len(ordered),
        files=[s.path.name for s in ordered],
    )
    return MedImage(
        pixels=np.ascontiguousarray(values),
        spacing_mm=ordered[0].spacing,
        slice_spacing_mm=step,
        default_window=window,
        modality=planes[0].modality,
        meta=meta,
    )


def _header(path: Path, name: str) -> _Slice:
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    label = f"{name}/{path.name}"
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        size = (int(ds.Rows), int(ds.Columns))
        spacing = _floats(ds.get("PixelSpacing"), 2)
        orientation = _floats(ds.get("ImageOrientationPatient"), 6)
        position = _floats(ds.get("ImagePositionPatient"), 3)
        instance = ds.get("InstanceNumber")
        thickness = _floats(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness"), 1)
        series = str(ds.get("SeriesInstanceUID") or "")
    except InvalidDicomError as e:
        raise DatasetError(
            f"{label}: not a DICOM file ({e}); a series folder holds slices only"
        ) from e
    except _PARSE_ERRORS as e:
        raise DatasetError(f"{label}: cannot parse the DICOM header: {e}") from e
    return _Slice(
        path=path,
        series=series,
        size=size,
        spacing=(spacing[0], spacing[1]) if spacing is not None else None,
        orientation=np.asarray(orientation) if orientation is not None else None,
        position=np.asarray(position) if position is not None else None,
        instance=int(instance) if instance not in (None, "") else None,
        thickness=thickness[0] if thickness is not None else None,
        header=ds,
    )


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    """``count`` finite floats from a DICOM value (multi-valued or not), else ``None``."""
    if value is None or value == "":
        return None
    items = list(value) if not isinstance(value, (str, bytes, int, float)) else [value]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(out) != count or not np.isfinite(out).all():
        return None
    return out


def _check_one_series(slices: list[_Slice], name: str) -> None:
    groups: dict[str, list[str]] = {}
    for s in slices:
        groups.setdefault(s.series, []).append(s.path.name)
    if len(groups) > 1:
        listed = "; ".join(
            f"{uid or '(no SeriesInstanceUID)'}: {len(files)} file(s), e.g. {files[0]}"
            for uid, files in sorted(groups.items(), key=lambda kv: -len(kv[1]))
        )
        raise DatasetError(
            f"{name}: files of {len(groups)} series are mixed in one folder ({listed}); "
            "put each series in its own folder"
        )


def _check_same_grid(slices: list[_Slice], name: str) -> None:
    first = slices[0]
    for s in slices[1:]:
        if s.size != first.size:
            raise DatasetError(
                f"{name}: {s.path.name} is {s.size[1]}x{s.size[0]} pixels but {first.path.name} "
                f"is {first.size[1]}x{first.size[0]}; a series has one slice size"
            )
        if _differs(s.spacing, first.spacing, rtol=_TOLERANCE / 10):
            raise DatasetError(
                f"{name}: pixel spacing {s.spacing} mm of {s.path.name} differs from "
                f"{first.spacing} mm of {first.path.name}; a series has one pixel spacing"
            )
        if _differs(s.orientation, first.orientation, atol=1e-3):
            raise DatasetError(
                f"{name}: {s.path.name} is oriented {_cosines(s)} but {first.path.name} "
                f"{_cosines(first)} (ImageOrientationPatient); slices of one stack share their "
                "orientation (a localiser or a radial series is not a volume)"
            )


def _differs(a: Any, b: Any, *, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """Whether two header values disagree: one missing, or not equal within the tolerances."""
    if a is None or b is None:
        return (a is None) != (b is None)
    return not np.allclose(a, b, rtol=rtol, atol=atol)


def _cosines(s: _Slice) -> str:
    return "unknown" if s.orientation is None else "[" + ", ".join(
        f"{v:.3f}" for v in s.orientation) + "]"  # fmt: skip


def _order(slices: list[_Slice], name: str) -> tuple[list[_Slice], float | None]:
    """Slices sorted along the stack normal, and the spacing between them in mm."""
    if len(slices) == 1:
        return slices, slices[0].thickness
    if all(s.position is not None for s in slices) and slices[0].orientation is not None:
        cosines = slices[0].orientation
        normal = np.cross(cosines[:3], cosines[3:])
        depth = {s.path.name: float(np.dot(normal, s.position)) for s in slices}  # type: ignore[arg-type]
        ordered = sorted(slices, key=lambda s: depth[s.path.name])
        return ordered, _regular_step([depth[s.path.name] for s in ordered], ordered, name)
    if any(s.position is not None for s in slices):
        missing = [s.path.name for s in slices if s.position is None]
        raise DatasetError(
            f"{name}: {len(missing)} file(s) have no ImagePositionPatient (e.g. {missing[0]}) "
            "while others do; the slices cannot be ordered in space"
        )
    if any(s.instance is None for s in slices):
        raise DatasetError(
            f"{name}: the files have neither ImagePositionPatient nor InstanceNumber; the "
            "slices cannot be ordered"
        )
    ordered = sorted(slices, key=lambda s: s.instance or 0)
    numbers = [s.instance or 0 for s in ordered]
    _regular_step([float(n) for n in numbers], ordered, name, unit="")
    return ordered, ordered[0].thickness


def _regular_step(
    depths: list[float], ordered: list[_Slice], name: str, unit: str = " mm"
) -> float:
    steps = np.diff(np.asarray(depths))
    typical = float(np.median(steps))
    if typical <= 0 or np.any(steps <= typical * _TOLERANCE):
        k = int(np.argmin(steps))
        raise DatasetError(
            f"{name}: {ordered[k].path.name} and {ordered[k + 1].path.name} lie at the same "
            f"position ({depths[k]:g}{unit}); a series holds each slice once"
        )
    for k, step in enumerate(steps):
        ratio = step / typical
        if abs(ratio - 1) <= _TOLERANCE:
            continue
        a, b = ordered[k].path.name, ordered[k + 1].path.name
        whole = round(ratio)
        if whole >= 2 and abs(ratio - whole) <= _TOLERANCE:
            raise DatasetError(
                f"{name}: {whole - 1} slice(s) missing between {a} ({depths[k]:g}{unit}) and "
                f"{b} ({depths[k + 1]:g}{unit}): a step of {step:g}{unit} where the series' "
                f"slices are {typical:g}{unit} apart"
            )
        raise DatasetError(
            f"{name}: inconsistent slice spacing: {a} to {b} is {step:g}{unit} where the "
            f"series' slices are {typical:g}{unit} apart (more than {_TOLERANCE:.0%} off)"
        )
    return typical
