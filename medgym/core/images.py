"""Image references (serialisable) and decoded medical images (native pixels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from medgym.errors import ConfigError

__all__ = [
    "REFORMATS",
    "ImageRef",
    "MedImage",
    "Reformat",
    "Window",
    "plane_shape",
    "plane_spacing",
]

Reformat = Literal["coronal", "sagittal"]
#: Volume axis each reformat holds fixed: a coronal plane is one row of every axial slice, a
#: sagittal plane one column. The acquired slices (``None``) fix axis 0.
REFORMATS: dict[Reformat | None, int] = {None: 0, "coronal": 1, "sagittal": 2}


def plane_shape(
    width: int, height: int, slices: int, reformat: Reformat | None
) -> tuple[int, int, int]:
    """``(width, height, depth)`` of a volume's planes: the acquired slices or a reformat.

    A reformat of an axial stack shows the slices top to bottom: a coronal plane is
    ``width x slices`` (one per row, ``height`` of them), a sagittal plane ``height x slices``
    (one per column). Its pixel ``(x, y)`` is voxel ``(slice y, row fixed, column x)`` (coronal)
    or ``(slice y, row x, column fixed)`` (sagittal): everything stays in voxel coordinates.
    """
    if reformat is None:
        return (width, height, slices)
    if reformat == "coronal":
        return (width, slices, height)
    return (height, slices, width)


def plane_spacing(
    spacing_mm: tuple[float, float] | None,
    slice_spacing_mm: float | None,
    reformat: Reformat | None,
) -> tuple[float, float] | None:
    """``(row, column)`` spacing in mm of a plane's pixels (see :func:`plane_shape`), if known."""
    if reformat is None:
        return spacing_mm
    if spacing_mm is None or slice_spacing_mm is None:
        return None
    return (slice_spacing_mm, spacing_mm[1] if reformat == "coronal" else spacing_mm[0])


class ImageRef(BaseModel):
    """Where an image lives; enough for any worker to load the same pixels.

    ``uri`` is a local path, ``file://`` URI, or a scheme handled by :mod:`medgym.data.io`
    (``synthetic://...`` procedural images, ``pkg://...`` images shipped in installed packages,
    ``store://<sha256>`` images uploaded to an :class:`~medgym.data.store.ImageStore`).

    Example:
        >>> ImageRef(uri="scans/chest.dcm").uri
        'scans/chest.dcm'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = Field(min_length=1, description="Path or URI of the image file or generator.")
    sha256: str | None = Field(default=None, description="Content hash of the bytes, if known.")
    frame: int | None = Field(
        default=None, ge=0, description="Frame of a multi-frame file, or slice of a volume to keep."
    )
    axis: Literal[0, 1, 2] | None = Field(
        default=None, description="Volume axis that slices are taken along (NIfTI); None: axial."
    )


class Window(BaseModel):
    """A display window: values in ``[level - width/2, level + width/2]`` map to 0..255."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Bounds keep the float32 arithmetic of rendering finite (no overflow to inf/NaN).
    level: float = Field(
        ge=-1e12, le=1e12, description="Window centre, in the image's native units (e.g. HU)."
    )
    width: float = Field(
        ge=1e-9, le=1e12, description="Window width, in native units; 1e-9 to 1e12."
    )

    @field_validator("level", "width")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not np.isfinite(v):
            raise ValueError(f"window values must be finite, got {v}")
        return v

    @property
    def low(self) -> float:
        """Native value that renders black."""
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        """Native value that renders white."""
        return self.level + self.width / 2


@dataclass(frozen=True, eq=False)
class MedImage:
    """A decoded image in native units.

    Attributes:
        pixels: Array of shape ``(slices, height, width, channels)``: ``slices`` is 1 for a 2-D
            image, ``channels`` is 1 (grayscale, any dtype incl. 16-bit and float HU) or 3 (RGB
            uint8). Treat as read-only: it is shared through the image cache.
        spacing_mm: ``(row, column)`` pixel spacing in millimetres, when known.
        slice_spacing_mm: Distance between consecutive slices in millimetres, when known
            (volumes: DICOM series, NIfTI, ``synthetic3d``).
        default_window: The window used when a view names none; ``None`` means the pixels are
            already display values (uint8).
        modality: DICOM-style modality code or free text (``CT``, ``MR``, ``CR``, ``fundus``...).
        meta: Anything else the reader learned (body part, series description, plane...).
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    default_window: Window | None = None
    modality: str | None = None
    meta: dict[str, object] = field(default_factory=dict)
    slice_spacing_mm: float | None = None

    def __post_init__(self) -> None:
        p = self.pixels
        if p.ndim != 4 or p.shape[3] not in (1, 3) or min(p.shape) < 1:
            raise ConfigError(
                f"MedImage.pixels must have shape (slices, height, width, 1 or 3); got {p.shape}"
            )
        if self.slice_spacing_mm is not None and not (
            np.isfinite(self.slice_spacing_mm) and self.slice_spacing_mm > 0
        ):
            raise ConfigError(
                f"slice_spacing_mm must be a positive number of mm; got {self.slice_spacing_mm}"
            )
        if p.shape[3] == 3 and p.dtype != np.uint8:
            raise ConfigError(f"RGB MedImage pixels must be uint8; got {p.dtype}")
        if self.default_window is None and p.dtype != np.uint8:
            raise ConfigError(
                f"MedImage with {p.dtype} pixels needs a default_window to be displayable"
            )
        p.setflags(write=False)

    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        *,
        spacing_mm: tuple[float, float] | None = None,
        default_window: Window | None = None,
        modality: str | None = None,
        meta: dict[str, object] | None = None,
        slice_spacing_mm: float | None = None,
    ) -> MedImage:
        """Wrap a ``(H, W)``, ``(H, W, 3)`` or ``(S, H, W)`` array.

        A non-uint8 array without ``default_window`` gets a min-max window.
        """
        a = np.asarray(array)
        if a.ndim == 2:
            a = a[None, :, :, None]
        elif a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8:
            a = a[None]
        elif a.ndim == 3:
            a = a[:, :, :, None]
        elif a.ndim != 4:
            raise ConfigError(f"expected a (H, W), (H, W, 3) or (S, H, W) array; got {a.shape}")
        if default_window is None and a.dtype != np.uint8:
            default_window = min_max_window(a)
        return cls(
            pixels=np.ascontiguousarray(a),
            spacing_mm=spacing_mm,
            default_window=default_window,
            modality=modality,
            meta=dict(meta or {}),
            slice_spacing_mm=slice_spacing_mm,
        )

    def plane(self, reformat: Reformat | None, index: int) -> np.ndarray:
        """Plane ``index`` as ``(height, width, channels)``: an acquired slice or a reformat.

        Raises:
            ConfigError: ``index`` is outside the volume along the plane's normal.
        """
        depth = plane_shape(self.width, self.height, self.num_slices, reformat)[2]
        if not 0 <= index < depth:
            what = "slice" if reformat is None else f"{reformat} plane"
            raise ConfigError(
                f"{what} {index} is out of range; the image has {depth} (0..{depth - 1})"
            )
        if reformat is None:
            return self.pixels[index]
        if reformat == "coronal":
            return self.pixels[:, index]
        return self.pixels[:, :, index]

    @property
    def num_slices(self) -> int:
        """Number of slices (1 for a 2-D image)."""
        return int(self.pixels.shape[0])

    @property
    def height(self) -> int:
        """Height in native pixels."""
        return int(self.pixels.shape[1])

    @property
    def width(self) -> int:
        """Width in native pixels."""
        return int(self.pixels.shape[2])

    @property
    def is_color(self) -> bool:
        """Whether the image is RGB."""
        return self.pixels.shape[3] == 3

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in native pixels."""
        return (self.width, self.height)


def min_max_window(pixels: np.ndarray) -> Window:
    """A window spanning the 0.5th to 99.5th percentile of ``pixels`` (robust to outliers)."""
    sample = pixels.reshape(-1)
    if sample.size > 1_000_000:
        sample = sample[:: sample.size // 1_000_000]
    lo, hi = np.percentile(sample.astype(np.float64), [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        hi = lo + 1.0
    return Window(level=float(lo + hi) / 2, width=float(hi - lo))
