"""Shared geometry of the image tools: a model's box in view pixels to a region of original pixels.

Every box tool (``zoom_in``, ``crop``, ``reground``) goes through :func:`resolve_region`, so the
validation, clamping, rounding and enlarging rules (and their messages) are written once:

1. :func:`~medgym.core.bbox.validate_bbox`: four finite numbers, ``x1 < x2``, ``y1 < y2``,
   aspect ratio at most ``ToolConfig.max_aspect``.
2. Clamp to the view ``[0, width] x [0, height]``; nothing left is an error naming the view's
   size; a clamp is reported in the text, noted ``"clamped"`` and charged
   ``ToolConfig.clamp_penalty``.
3. Map to original pixels with :meth:`ViewSpec.view_to_original`, round *outward* to whole pixels
   (floor ``x1, y1``, ceil ``x2, y2``) and clip to the image, so the spec and
   :func:`~medgym.core.view.render` agree on exactly which pixels are shown.
4. Grow sides shorter than ``ToolConfig.min_box_side_px`` about the centre (noted ``"enlarged"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medgym.core.bbox import BBox, area, clamp, enlarge_to_min_side, validate_bbox
from medgym.core.images import Window
from medgym.core.view import ViewSpec
from medgym.errors import ConfigError, InvalidBBoxError, ToolError
from medgym.tools.base import ImageInfo, ToolContext, ToolResult

__all__ = [
    "Region",
    "check_room",
    "derive_view",
    "fmt_box",
    "fmt_num",
    "fmt_px",
    "image_info",
    "made_view",
    "plane_word",
    "resolve_region",
    "sized",
]

# Slack for float error of the view mapping before rounding outward (a coordinate computed as
# 100.0000000001 must not grow the region by a whole pixel).
_EPS = 1e-6


@dataclass(frozen=True)
class Region:
    """A box resolved against a view.

    Attributes:
        view: The target view.
        box_view: The box as used, in the target view's pixels (after clamping).
        bbox_px: The region in original pixels: whole pixels, inside the image.
        notes: ``"clamped"`` and/or ``"enlarged"``.
        remarks: Sentences for the model about what was changed.
        penalty: Penalty to charge for the call.
    """

    view: ViewSpec
    box_view: BBox
    bbox_px: BBox
    notes: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()
    penalty: float = 0.0


def fmt_num(v: float) -> str:
    """A coordinate as a model would write it: ``12`` or ``12.5``."""
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def fmt_box(box: BBox) -> str:
    """``[x1, y1, x2, y2]`` with compact numbers."""
    return "[" + ", ".join(fmt_num(round(v, 2)) for v in box) + "]"


def fmt_px(bbox_px: BBox) -> str:
    """``original pixels 512-640 x 300-428``."""
    x1, y1, x2, y2 = (fmt_num(v) for v in bbox_px)
    return f"original pixels {x1}-{x2} x {y1}-{y2}"


def image_info(ctx: ToolContext, view: ViewSpec) -> ImageInfo:
    """The :class:`ImageInfo` of the sample image a view shows."""
    if view.image_index >= len(ctx.images):
        raise ConfigError(
            f"view shows sample image {view.image_index}, but the context describes "
            f"{len(ctx.images)} image(s)"
        )
    return ctx.images[view.image_index]


def plane_word(view: ViewSpec) -> str:
    """What one step of ``view``'s plane is called: ``slice``, or a reformat's plane."""
    return "slice" if view.reformat is None else f"{view.reformat} plane"


def check_room(ctx: ToolContext) -> None:
    """Refuse to add a view past ``ToolConfig.max_views``."""
    if len(ctx.views) >= ctx.config.max_views:
        raise ToolError(
            f"this episode already shows {len(ctx.views)} images, the most allowed; "
            "answer with what you have seen"
        )


def _round_out(box: BBox, width: int, height: int) -> BBox | None:
    """Clip ``box`` to the image and round it outward to whole pixels (at least one pixel)."""
    inside = clamp(box, width, height)
    if inside is None:
        return None
    x1 = min(max(0, math.floor(inside[0] + _EPS)), width - 1)
    y1 = min(max(0, math.floor(inside[1] + _EPS)), height - 1)
    x2 = max(x1 + 1, min(width, math.ceil(inside[2] - _EPS)))
    y2 = max(y1 + 1, min(height, math.ceil(inside[3] - _EPS)))
    return (float(x1), float(y1), float(x2), float(y2))


def resolve_region(ctx: ToolContext, index: int, raw_box: object) -> Region:
    """Validate a box in the pixels of view ``index`` and map it to original pixels.

    Args:
        ctx: The tool context.
        index: Index of the target view in ``ctx.views``.
        raw_box: The box as the model wrote it, in the target view's pixels.

    Returns:
        The resolved :class:`Region`.

    Raises:
        InvalidBBoxError: If the box is malformed, degenerate, too elongated or outside the view.
        ToolError: If ``index`` names no view.
    """
    view = ctx.view(index)
    cfg = ctx.config
    box = validate_bbox(raw_box, name="box", max_aspect=cfg.max_aspect)
    vw, vh = view.out_size
    size = f"image {index}, which is {vw}x{vh} px"
    inside = clamp(box, vw, vh)
    if inside is None:
        raise InvalidBBoxError(
            f"box {fmt_box(box)} lies outside {size}; give a box within [0, 0, {vw}, {vh}]"
        )
    box_area = area(box)
    if not box_area > 0:  # e.g. [0, 0, 1e-300, 1e-300]: ordered corners, an area that underflows
        raise InvalidBBoxError(
            f"box {fmt_box(box)} has no area; give a box at least one pixel wide and tall"
        )
    shown = area(inside) / box_area
    if shown < cfg.min_visible_fraction:
        raise InvalidBBoxError(
            f"only {shown:.0%} of box {fmt_box(box)} lies inside {size}; at least "
            f"{cfg.min_visible_fraction:.0%} must"
        )
    notes: list[str] = []
    remarks: list[str] = []
    penalty = 0.0
    if inside != box:
        notes.append("clamped")
        remarks.append(
            f"Box {fmt_box(box)} reaches outside {size}; box clamped to {fmt_box(inside)}."
        )
        penalty = cfg.clamp_penalty
    width, height, _ = image_info(ctx, view).plane_shape(view.reformat)
    bbox_px = _round_out(view.view_to_original(inside), width, height)
    if bbox_px is None:
        raise InvalidBBoxError(f"box {fmt_box(box)} shows no pixels of {size}")
    w, h = bbox_px[2] - bbox_px[0], bbox_px[3] - bbox_px[1]
    # A reformat's rows are slices: its smallest region is measured as displayed (in mm terms).
    r = _row_ratio(ctx, view)
    if min(w, h * r) < cfg.min_box_side_px:
        tall = (bbox_px[0], bbox_px[1] * r, bbox_px[2], bbox_px[3] * r)
        g = enlarge_to_min_side(tall, cfg.min_box_side_px, width, height * r)
        grown = (g[0], g[1] / r, g[2], g[3] / r)
        grown_px = _round_out(grown, width, height) or bbox_px
        if grown_px != bbox_px:
            notes.append("enlarged")
            gw, gh = grown_px[2] - grown_px[0], grown_px[3] - grown_px[1]
            remarks.append(
                f"The region ({fmt_num(w)}x{fmt_num(h)} original px) was enlarged about its "
                f"centre to {fmt_num(gw)}x{fmt_num(gh)} px, the smallest region shown."
            )
            bbox_px = grown_px
    return Region(
        view=view,
        box_view=inside,
        bbox_px=bbox_px,
        notes=tuple(notes),
        remarks=tuple(remarks),
        penalty=penalty,
    )


def _row_ratio(ctx: ToolContext, view: ViewSpec) -> float:
    """Row over column spacing of a reformat's pixels (slices vs pixels); 1 for acquired slices."""
    if view.reformat is None:
        return 1.0
    spacing = image_info(ctx, view).plane_spacing(view.reformat)
    return 1.0 if spacing is None else spacing[0] / spacing[1]


def sized(ctx: ToolContext, view: ViewSpec, bbox_px: BBox, *, upscale: bool) -> tuple[int, int]:
    """Output size for ``bbox_px`` shown in ``view``'s orientation, by the context's sizer.

    A reformat's rows are slices, usually farther apart than its columns' pixels: its height is
    scaled by the ratio of the spacings, so a coronal view of 2 mm slices is not squashed.
    """
    w, h = bbox_px[2] - bbox_px[0], (bbox_px[3] - bbox_px[1]) * _row_ratio(ctx, view)
    if view.rot90 % 2:
        w, h = h, w
    return ctx.sizer(w, h, upscale=upscale)


def derive_view(
    parent: ViewSpec,
    parent_index: int,
    *,
    tool: str,
    bbox_px: BBox | None = None,
    out_size: tuple[int, int] | None = None,
    rot90: int | None = None,
    flip_h: bool | None = None,
    flip_v: bool | None = None,
    window: Window | None = None,
    label: str | None = None,
    slice_index: int | None = None,
    montage: tuple[int, ...] | None = None,
) -> ViewSpec:
    """A new view of the same image, plane (and slice, unless given) as ``parent``.

    Raises:
        ToolError: ``parent`` is an overview (a montage of slices) and no slice is chosen: a
            region of an overview is no region of the image.
    """
    if parent.montage is not None and slice_index is None:
        raise ToolError(
            f"image {parent_index} is an overview of slices {list(parent.montage)}; scroll to "
            "one of them first (scroll with slice=...), then look closer"
        )
    return ViewSpec(
        image_index=parent.image_index,
        bbox_px=parent.bbox_px if bbox_px is None else bbox_px,
        rot90=parent.rot90 if rot90 is None else rot90,
        flip_h=parent.flip_h if flip_h is None else flip_h,
        flip_v=parent.flip_v if flip_v is None else flip_v,
        window=parent.window if window is None else window,
        slice_index=parent.slice_index if slice_index is None else slice_index,
        reformat=parent.reformat,
        montage=montage,
        out_size=parent.out_size if out_size is None else out_size,
        parent=parent_index,
        tool=tool,
        label=label,
    )


def made_view(
    ctx: ToolContext,
    what: str,
    view: ViewSpec,
    *,
    notes: tuple[str, ...] = (),
    remarks: tuple[str, ...] = (),
    penalty: float = 0.0,
) -> ToolResult:
    """The result of a tool that adds ``view``: ``"<what>; this is image N."`` plus remarks."""
    text = f"{what}; this is image {len(ctx.views)}."
    if remarks:
        text += " " + " ".join(remarks)
    return ToolResult(text=text, view=view, notes=notes, penalty=penalty)
