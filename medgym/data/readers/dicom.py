"""DICOM through pydicom: modality LUT, default window, MONOCHROME1, frames, colour, spacing.

Values are kept in the modality's units (rescale slope/intercept applied, so CT is in HU); the
default window comes from the file's first WindowCenter/WindowWidth, or a robust min-max. A
MONOCHROME1 image (where high values display dark) is inverted within its value range, window
included, so that high always means white. Multi-frame files become slices, or ``frame`` keeps
one (only that frame is decoded). Colour photometric interpretations (RGB, YBR_*, PALETTE COLOR)
become RGB uint8. Only non-identifying header fields go into ``meta``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from medgym.core.images import MedImage, Window
from medgym.data.readers.common import (
    Source,
    check_frame,
    check_pixel_budget,
    compact_gray,
    gray_window,
    open_binary,
)
from medgym.errors import DatasetError, DependencyNotInstalled

__all__ = ["file_window", "looks_like_raw_dicom", "read_dicom"]

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}
# What pydicom raises on malformed files; it has no single base class for parse errors.
_PARSE_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    EOFError,
    ArithmeticError,
    NotImplementedError,
    struct.error,
)
_META_FIELDS = {
    "BodyPartExamined": "body_part",
    "ViewPosition": "view_position",
    "SeriesDescription": "series_description",
    "PatientPosition": "patient_position",
    "Laterality": "laterality",
}
_PLUGINS_HINT = (
    "install a decoder plugin, e.g. `pip install pylibjpeg pylibjpeg-libjpeg "
    "pylibjpeg-openjpeg` or `pip install python-gdcm`"
)


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError as e:
        raise DependencyNotInstalled.for_extra("pydicom", "data") from e
    return pydicom


def looks_like_raw_dicom(head: bytes) -> bool:
    """Whether ``head`` could start a DICOM dataset written without preamble and ``DICM``.

    Such files begin with an element of group 0x0002 (file meta) or 0x0008 (identifying module);
    checking this keeps random bytes away from pydicom's forgiving parser.
    """
    if len(head) < 8:
        return False
    group = struct.unpack("<H", head[:2])[0]
    return group in (0x0002, 0x0008) and struct.unpack("<H", head[2:4])[0] < 0x0100


def read_dicom(
    source: Source, *, name: str, frame: int | None, max_pixels: int, force: bool = False
) -> MedImage:
    """Decode a DICOM file (``force``: it has no preamble, parse it anyway).

    Raises:
        DatasetError: Not DICOM, no pixel data, missing decoder plugin, too large, bad frame.
    """
    pydicom = _pydicom()
    from pydicom.errors import BytesLengthException, InvalidDicomError

    header_errors: tuple[type[Exception], ...] = (BytesLengthException, *_PARSE_ERRORS)
    use_errors: tuple[type[Exception], ...] = (RuntimeError, *header_errors)

    with open_binary(source) as f:
        try:
            ds = pydicom.dcmread(f, force=force)
        except InvalidDicomError as e:
            raise DatasetError(f"{name}: not a valid DICOM file: {e}") from e
        except header_errors as e:
            raise DatasetError(f"{name}: cannot parse DICOM header: {e}") from e
        # pydicom converts elements lazily, so malformed values surface while we use them.
        try:
            return _read(ds, name=name, frame=frame, max_pixels=max_pixels)
        except DatasetError:
            raise
        except use_errors as e:
            raise DatasetError(f"{name}: cannot interpret DICOM data: {e}") from e


def _read(ds: Any, *, name: str, frame: int | None, max_pixels: int) -> MedImage:
    if not any(tag in ds for tag in _PIXEL_TAGS):
        kind = ds.get("SOPClassUID")
        what = f" ({kind.name})" if kind is not None and hasattr(kind, "name") else ""
        raise DatasetError(f"{name}: DICOM file{what} has no pixel data to show")
    rows, cols = int(ds.Rows), int(ds.Columns)
    n_frames = int(ds.get("NumberOfFrames") or 1)
    if rows < 1 or cols < 1 or n_frames < 1:
        raise DatasetError(f"{name}: DICOM declares {cols}x{rows} pixels x {n_frames} frames")
    _guess_transfer_syntax(ds)
    check_frame(frame, n_frames, name)
    kept = 1 if frame is not None else n_frames
    samples = int(ds.get("SamplesPerPixel") or 1)
    check_pixel_budget(rows * cols * kept, max_pixels, name, f"{cols}x{rows} x {kept} frame(s)",
                       bytes_per_pixel=8 * samples)  # fmt: skip  # rescaled in float64
    arr = _decode(ds, name=name, frame=frame if n_frames > 1 else None)
    return _to_image(ds, arr, name=name, frame=frame, n_frames=n_frames)


def _guess_transfer_syntax(ds: Any) -> None:
    """Give a dataset read without file meta the (uncompressed) syntax it was parsed with."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if "TransferSyntaxUID" in ds.file_meta:
        return
    implicit, little = ds.original_encoding
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _decode(ds: Any, *, name: str, frame: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax_name = getattr(syntax, "name", "unknown transfer syntax")
    try:
        return pixel_array(ds, index=frame)
    except (RuntimeError, NotImplementedError) as e:
        raise DatasetError(
            f"{name}: cannot decode DICOM pixel data ({syntax_name}); {_PLUGINS_HINT}. "
            f"pydicom said: {e}"
        ) from e
    except _PARSE_ERRORS as e:
        raise DatasetError(f"{name}: DICOM pixel data is truncated or corrupt: {e}") from e


def _to_image(ds: Any, arr: np.ndarray, *, name: str, frame: int | None, n_frames: int) -> MedImage:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    colour = photometric in _COLOUR or photometric == "PALETTE COLOR"
    single = frame is not None or n_frames == 1
    if single:
        arr = arr[None]
    meta = _meta(ds, photometric, n_frames)
    spacing = _spacing(ds)
    modality = str(ds.get("Modality") or "").strip() or None
    if colour:
        rgb = _to_rgb(ds, arr, photometric, name)
        pixels = np.ascontiguousarray(rgb)
        return MedImage(pixels=pixels, spacing_mm=spacing, modality=modality, meta=meta)
    if arr.ndim != 3:
        raise DatasetError(f"{name}: unexpected grayscale pixel array shape {arr.shape}")
    values, window = _grayscale(ds, arr, photometric, frame)
    return MedImage(
        pixels=np.ascontiguousarray(values[:, :, :, None]),
        spacing_mm=spacing,
        default_window=window,
        modality=modality,
        meta=meta,
    )


def _grayscale(
    ds: Any, arr: np.ndarray, photometric: str, frame: int | None
) -> tuple[np.ndarray, Window]:
    from pydicom.pixels import apply_rescale

    if "RescaleSlope" in ds or "RescaleIntercept" in ds or "ModalityLUTSequence" in ds:
        values = apply_rescale(arr, ds)
    else:
        values = _functional_rescale(ds, arr, frame)
    window = file_window(ds)
    if photometric == "MONOCHROME1":
        k = _value_range_sum(ds, values)
        values = k - values.astype(np.float64)
        if window is not None:
            window = Window(level=k - window.level, width=window.width)
    values = compact_gray(values)
    return values, window or gray_window(values)


def _functional_rescale(ds: Any, arr: np.ndarray, frame: int | None) -> np.ndarray:
    """Rescale of enhanced multi-frame files, kept in the (shared or per-frame) groups."""
    shared = _first(ds, "SharedFunctionalGroupsSequence", "PixelValueTransformationSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if shared is None and not per_frame:
        return arr
    frames = [frame] if frame is not None else list(range(arr.shape[0]))
    out = arr.astype(np.float64)
    for i, f in enumerate(frames):
        item = shared
        if item is None and per_frame and f < len(per_frame):
            seq = per_frame[f].get("PixelValueTransformationSequence")
            item = seq[0] if seq else None
        if item is not None:
            slope = float(item.get("RescaleSlope", 1) or 1)
            out[i] = out[i] * slope + float(item.get("RescaleIntercept", 0) or 0)
    return out


def _value_range_sum(ds: Any, values: np.ndarray) -> float:
    """``low + high`` of the rescaled value range, so that ``k - v`` mirrors ``v`` inside it."""
    bits = int(ds.get("BitsStored") or 0)
    if bits <= 0 or "ModalityLUTSequence" in ds:
        return float(values.min()) + float(values.max())
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return (lo + hi) * slope + 2 * intercept


def file_window(ds: Any) -> Window | None:
    """The first WindowCenter/WindowWidth of ``ds`` (or its shared functional groups), if valid."""
    item = ds
    if "WindowCenter" not in ds:
        item = _first(ds, "SharedFunctionalGroupsSequence", "FrameVOILUTSequence")
    if item is None:
        return None
    centre, width = _first_value(item.get("WindowCenter")), _first_value(item.get("WindowWidth"))
    if centre is None or width is None or not np.isfinite([centre, width]).all() or width <= 0:
        return None
    return Window(level=centre, width=width)


def _to_rgb(ds: Any, arr: np.ndarray, photometric: str, name: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            arr = apply_color_lut(arr, ds)
        except _PARSE_ERRORS as e:
            raise DatasetError(f"{name}: cannot apply the DICOM palette: {e}") from e
    if arr.ndim != 4 or arr.shape[3] != 3:
        raise DatasetError(f"{name}: unexpected colour pixel array shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored") or arr.dtype.itemsize * 8)
    if photometric == "PALETTE COLOR":
        bits = arr.dtype.itemsize * 8
    shift = max(bits - 8, 0)
    return (arr.astype(np.uint64) >> shift).clip(0, 255).astype(np.uint8)


def _spacing(ds: Any) -> tuple[float, float] | None:
    candidates = [ds.get("PixelSpacing"), ds.get("ImagerPixelSpacing")]
    measures = _first(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
    if measures is not None:
        candidates.append(measures.get("PixelSpacing"))
    for value in candidates:
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0 and np.isfinite([row, col]).all():
            return (row, col)
    return None


def _meta(ds: Any, photometric: str, n_frames: int) -> dict[str, object]:
    meta: dict[str, object] = {"format": "DICOM", "photometric": photometric, "frames": n_frames}
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None:
        meta["transfer_syntax"] = str(getattr(syntax, "name", syntax))
    for keyword, key in _META_FIELDS.items():
        value = str(ds.get(keyword) or "").strip()
        if value:
            meta[key] = value
    plane = _plane(ds)
    if plane:
        meta["plane"] = plane
    return meta


def _plane(ds: Any) -> str | None:
    """``axial``/``coronal``/``sagittal`` (or ``oblique``) from ImageOrientationPatient."""
    value = ds.get("ImageOrientationPatient")
    if value is None:
        item = _first(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence")
        value = item.get("ImageOrientationPatient") if item is not None else None
    try:
        cosines = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if cosines.shape != (6,) or not np.isfinite(cosines).all():
        return None
    normal = np.abs(np.cross(cosines[:3], cosines[3:]))
    if normal.max() < 0.8:
        return "oblique"
    return ("sagittal", "coronal", "axial")[int(normal.argmax())]


def _first(ds: Any, outer: str, inner: str) -> Any | None:
    """``ds.<outer>[0].<inner>[0]`` when both sequences are present and non-empty."""
    seq = ds.get(outer)
    if not seq:
        return None
    sub = seq[0].get(inner)
    return sub[0] if sub else None


def _first_value(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
