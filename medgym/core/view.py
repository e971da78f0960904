"""What the model is shown: a :class:`ViewSpec`, and the pure :func:`render` that makes its pixels.

A view is a box of the *original* image (native pixels of one slice, or of a coronal or
sagittal reformat of a volume: :meth:`MedImage.plane`), an orientation (quarter turns and
flips only, so a box stays a box), a display window and an output size. Any worker that
can load the image can recreate any view from its spec: this keeps the tool server stateless and
makes forking an episode cheap (a fork copies specs, never pixels).

The pipeline is crop -> resize -> window -> orient -> RGB. Resizing before windowing keeps the
per-pixel work proportional to the output, not to the crop (a 2048 px crop rendered at 448 px
windows 0.2 M pixels, not 4 M). :func:`render_native` stops before the last step: a grayscale
image's view stays one channel (a third of the bytes to cache or send); ``render`` is exactly
``gray_to_rgb(render_native(...))``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from medgym.core.bbox import BBox
from medgym.core.images import MedImage, Reformat, Window, plane_shape
from medgym.errors import ConfigError

MAX_OUT_SIDE = 8192
"""Largest side of a rendered view in pixels (a 4096x4096 render is 48 MB in the view cache)."""

__all__ = [
    "ViewSpec",
    "apply_window",
    "full_view",
    "gray_to_rgb",
    "montage_grid",
    "montage_label_box",
    "render",
    "render_native",
]

_RESIZE_NATIVE = (np.uint8, np.uint16, np.int16, np.float32)


class ViewSpec(BaseModel):
    """A view of one image: which image, which region, how it is oriented, windowed and sized.

    Attributes are in the units their names say: ``bbox_px`` is in original (native) pixels of
    the image, ``out_size`` is ``(width, height)`` of the rendered view in pixels.

    Example:
        >>> v = ViewSpec(bbox_px=(0, 0, 100, 50), out_size=(200, 100))
        >>> v.view_to_original((0, 0, 200, 100))
        (0.0, 0.0, 100.0, 50.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_index: int = Field(default=0, ge=0, description="Index into the sample's images.")
    bbox_px: BBox = Field(
        description="Region shown, in original pixels: (x1, y1, x2, y2), finite, with x1 < x2 "
        "and y1 < y2 (an order JSON Schema cannot state; other boxes are refused with 422)."
    )
    rot90: int = Field(default=0, ge=0, le=3, description="Counter-clockwise quarter turns.")
    flip_h: bool = Field(default=False, description="Mirror left-right (after rotation).")
    flip_v: bool = Field(default=False, description="Mirror top-bottom (after rotation).")
    window: Window | None = Field(default=None, description="Display window; None: default.")
    slice_index: int | None = Field(default=None, ge=0, description="Slice; None: middle slice.")
    reformat: Reformat | None = Field(
        default=None,
        description="Plane of a volume shown: None, the acquired slices; coronal or sagittal, a "
        "reformat of an axial stack (its slice_index then counts rows or columns, and bbox_px "
        "is in (column or row, slice) voxels).",
    )
    montage: tuple[int, ...] | None = Field(
        default=None,
        max_length=64,
        description="Slices shown side by side, each labelled with its index (an overview); "
        "None: one slice.",
    )
    out_size: tuple[int, int] = Field(
        description="(width, height) of the rendered view.",
        # what the validator below enforces, stated in the JSON schema (OpenAPI) as well
        json_schema_extra={
            "prefixItems": [{"type": "integer", "minimum": 1, "maximum": MAX_OUT_SIDE}] * 2
        },
    )
    parent: int | None = Field(default=None, ge=0, description="Index of the view it came from.")
    tool: str | None = Field(default=None, description="Name of the tool that made this view.")
    label: str | None = Field(default=None, description="What the model said it looks at.")

    @field_validator("bbox_px")
    @classmethod
    def _box_ok(cls, v: BBox) -> BBox:
        if not all(math.isfinite(c) for c in v) or v[2] <= v[0] or v[3] <= v[1]:
            raise ValueError(f"bbox_px must be finite with x1 < x2 and y1 < y2; got {v}")
        return v

    @field_validator("out_size")
    @classmethod
    def _size_ok(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 1 or v[1] < 1:
            raise ValueError(f"out_size must be positive (width, height); got {v}")
        if max(v) > MAX_OUT_SIDE:
            raise ValueError(f"out_size sides must be <= {MAX_OUT_SIDE} px; got {v}")
        return v

    # ------------------------------------------------------------------ geometry
    @property
    def crop_size(self) -> tuple[float, float]:
        """``(width, height)`` of the region in original pixels."""
        x1, y1, x2, y2 = self.bbox_px
        return (x2 - x1, y2 - y1)

    @property
    def oriented_size(self) -> tuple[float, float]:
        """Size of the region after rotation, in original pixels."""
        w, h = self.crop_size
        return (w, h) if self.rot90 % 2 == 0 else (h, w)

    @property
    def scale(self) -> float:
        """View pixels per original pixel (geometric mean of both axes)."""
        ow, oh = self.oriented_size
        return math.sqrt((self.out_size[0] / ow) * (self.out_size[1] / oh))

    def point_to_original(self, u: float, v: float) -> tuple[float, float]:
        """A point of the view (pixels as rendered) in original pixels of the image."""
        ow, oh = self.oriented_size
        x, y = u * ow / self.out_size[0], v * oh / self.out_size[1]
        if self.flip_h:
            x = ow - x
        if self.flip_v:
            y = oh - y
        w, h = ow, oh
        for _ in range(self.rot90):
            # A CCW turn maps (x, y) of a (w, h) frame to (y, w - x) of an (h, w) frame; undo it.
            w, h = h, w
            x, y = w - y, x
        return (self.bbox_px[0] + x, self.bbox_px[1] + y)

    def _original_point_to_view(self, px: float, py: float) -> tuple[float, float]:
        x, y = px - self.bbox_px[0], py - self.bbox_px[1]
        w, h = self.crop_size
        for _ in range(self.rot90):
            x, y = y, w - x
            w, h = h, w
        if self.flip_h:
            x = w - x
        if self.flip_v:
            y = h - y
        return (x * self.out_size[0] / w, y * self.out_size[1] / h)

    def view_to_original(self, box_view: BBox) -> BBox:
        """Map a box in this view's pixels to original pixels."""
        a = self.point_to_original(box_view[0], box_view[1])
        b = self.point_to_original(box_view[2], box_view[3])
        return (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))

    def original_to_view(self, box_px: BBox) -> BBox:
        """Map a box in original pixels to this view's pixels (may fall outside the view)."""
        a = self._original_point_to_view(box_px[0], box_px[1])
        b = self._original_point_to_view(box_px[2], box_px[3])
        return (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))


def full_view(image: MedImage, out_size: tuple[int, int], *, image_index: int = 0) -> ViewSpec:
    """The whole image at ``out_size``: the first view of an episode."""
    return ViewSpec(
        image_index=image_index,
        bbox_px=(0.0, 0.0, float(image.width), float(image.height)),
        out_size=out_size,
    )


#: Arrays up to this many elements are windowed in one pass (every ordinary view: a 448 px
#: view is 0.2 M); larger ones by blocks of rows of about ``_WINDOW_BLOCK`` elements (512 KiB
#: of float32: they stay in the CPU's cache).
_WINDOW_WHOLE = 1 << 20
_WINDOW_BLOCK = 1 << 17


def apply_window(pixels: np.ndarray, window: Window) -> np.ndarray:
    """Map native values to uint8 through ``window`` (linear ramp, clipped).

    An array over a million elements goes through blocks of rows: the same float32 arithmetic
    per element, so the same bytes as one pass, but its temporaries stay in the cache instead
    of streaming four full-size float32 copies through memory (a 4,096 px view: 64 MB each;
    35 -> 15 ms, and the memory traffic slowed every other request on the host).
    """
    low, scale = np.float32(window.low), np.float32(255.0 / window.width)
    if pixels.size <= _WINDOW_WHOLE:
        return _window_block(pixels, low, scale)
    rows = pixels.shape[0]  # over a million elements: at least one axis, and rows
    step = max(1, _WINDOW_BLOCK // (pixels.size // rows))
    out = np.empty(pixels.shape, np.uint8)
    for r in range(0, rows, step):
        out[r : r + step] = _window_block(pixels[r : r + step], low, scale)
    return out


def _window_block(pixels: np.ndarray, low: np.float32, scale: np.float32) -> np.ndarray:
    out = pixels.astype(np.float32, copy=True)
    out -= low
    out *= scale
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def render(image: MedImage, view: ViewSpec) -> np.ndarray:
    """Render ``view`` of ``image`` as a fresh ``(height, width, 3)`` uint8 RGB array.

    Pure: the same image and spec give the same pixels on any machine.

    Raises:
        ConfigError: If the slice or box does not fit the image.
    """
    crop = _render(image, view)
    if crop.shape[2] == 1:
        return gray_to_rgb(crop)
    return np.array(crop, order="C", copy=True)  # never hand out the cached image's memory


def render_native(image: MedImage, view: ViewSpec) -> np.ndarray:
    """Render ``view`` in the image's own channels: ``(height, width, 1)`` gray or ``(..., 3)`` RGB.

    The same pixels as :func:`render` without the gray-to-RGB expansion (a grayscale image's
    view is three equal channels there): ``gray_to_rgb(render_native(im, v))`` equals
    ``render(im, v)``. The tool server caches and sends this form.

    Example:
        >>> import numpy as np
        >>> from medgym.core.images import MedImage
        >>> im = MedImage(pixels=np.zeros((1, 8, 8, 1), np.uint8))
        >>> render_native(im, full_view(im, (4, 4))).shape
        (4, 4, 1)

    Raises:
        ConfigError: If the slice or box does not fit the image.
    """
    return np.array(_render(image, view), order="C", copy=True)


def montage_grid(count: int) -> tuple[int, int]:
    """``(columns, rows)`` of an overview of ``count`` slices: as square as it gets."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def _render_montage(image: MedImage, view: ViewSpec) -> np.ndarray:
    """The view's region on each slice of ``view.montage``, tiled row by row, index burnt in."""
    slices = view.montage or ()
    cols, rows = montage_grid(len(slices))
    out_w, out_h = view.out_size
    tile_w, tile_h = max(1, out_w // cols), max(1, out_h // rows)
    tiles = []
    for k in slices:
        tile = view.model_copy(
            update={"montage": None, "slice_index": k, "out_size": (tile_w, tile_h)}
        )
        tiles.append(np.ascontiguousarray(_render(image, tile)))
    channels = tiles[0].shape[2] if tiles else 1
    canvas = np.zeros((out_h, out_w, channels), np.uint8)
    for i, (k, pixels) in enumerate(zip(slices, tiles, strict=True)):
        r, c = divmod(i, cols)
        y, x = r * tile_h, c * tile_w
        th, tw = pixels.shape[:2]
        canvas[y : y + th, x : x + tw] = pixels
        label = np.ascontiguousarray(canvas[y : y + th, x : x + tw])
        org, font_scale, thickness = _label_font(tile_w, tile_h)
        cv2.putText(label, str(k), org, cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255,) * channels, thickness, cv2.LINE_AA)  # fmt: skip
        canvas[y : y + th, x : x + tw] = label.reshape(th, tw, channels)
    return canvas


def _label_font(tile_w: int, tile_h: int) -> tuple[tuple[int, int], float, int]:
    """``(baseline origin, font scale, thickness)`` of a montage tile's slice number."""
    scale = max(0.3, min(tile_w, tile_h) / 160)
    return (3, max(10, int(14 * scale))), 0.45 * scale, max(1, int(scale))


def montage_label_box(tile_w: int, tile_h: int, text: str) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` a tile's burnt-in number may touch (anti-aliasing included).

    For readers of an overview's pixels (a scripted policy) that must not take the number for
    a bright finding.
    """
    (x, y), font_scale, thickness = _label_font(tile_w, tile_h)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    pad = thickness + 1
    x0, y0 = max(0, x - pad), max(0, y - h - pad)
    return x0, y0, min(tile_w, x + w + pad), min(tile_h, y + base + pad)


def gray_to_rgb(pixels: np.ndarray) -> np.ndarray:
    """A fresh ``(height, width, 3)`` array from ``(height, width, 1)`` (or 2-D) gray pixels."""
    gray = pixels[:, :, 0] if pixels.ndim == 3 else pixels
    return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2RGB)


def _render(image: MedImage, view: ViewSpec) -> np.ndarray:
    """Crop, resize, window and orient; may share memory with ``image`` (callers copy)."""
    if view.montage is not None:
        return _render_montage(image, view)
    width, height, depth = plane_shape(image.width, image.height, image.num_slices, view.reformat)
    s = depth // 2 if view.slice_index is None else view.slice_index
    plane = image.plane(view.reformat, s)
    x1, y1, x2, y2 = view.bbox_px
    ix1, iy1 = max(0, math.floor(x1)), max(0, math.floor(y1))
    ix2, iy2 = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    if ix2 <= ix1 or iy2 <= iy1:
        raise ConfigError(f"view box {view.bbox_px} lies outside the {width}x{height} image")
    crop = plane[iy1:iy2, ix1:ix2]
    if view.reformat is not None:  # a strided view of the volume: gather it once
        crop = np.ascontiguousarray(crop)
    out_w, out_h = view.out_size
    if view.rot90 % 2:
        out_w, out_h = out_h, out_w
    if crop.dtype.type not in _RESIZE_NATIVE:
        crop = crop.astype(np.float32)
    ch, cw = crop.shape[:2]
    if (cw, ch) != (out_w, out_h):
        interp = cv2.INTER_AREA if out_w * out_h < cw * ch else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (out_w, out_h), interpolation=interp)
    if crop.ndim == 2:
        crop = crop[:, :, None]
    window = view.window or image.default_window
    if window is not None:
        crop = apply_window(crop, window)
    elif crop.dtype != np.uint8:
        raise ConfigError(f"{crop.dtype} image needs a window to render")
    if view.rot90:
        crop = np.rot90(crop, view.rot90)
    if view.flip_h:
        crop = crop[:, ::-1]
    if view.flip_v:
        crop = crop[::-1]
    return crop
