"""``zoom_in`` and ``crop``: show a region of a view at the original image's resolution.

Both take a box in the pixels of the view the model points at (``image_index``), map it to
original pixels and make a new view of that region, keeping the target view's orientation,
window and slice. ``zoom_in`` enlarges the region to fill the view size; ``crop`` shows it at
(at most) its native size.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from medgym.tools._args import BoxArg, Index
from medgym.tools._geometry import (
    check_room,
    derive_view,
    fmt_box,
    fmt_px,
    made_view,
    resolve_region,
    sized,
)
from medgym.tools.base import Tool, ToolContext, ToolResult

__all__ = ["CropParams", "ZoomInParams", "crop", "crop_region", "zoom_in", "zoom_in_region"]

_BOX_HELP = (
    "Region as [x1, y1, x2, y2] in pixels of the chosen image as you see it: x to the right, "
    "y down, (x1, y1) the top-left and (x2, y2) the bottom-right corner."
)
_INDEX_HELP = "Which image shown so far to look into: 0 is the original image; default 0."


class ZoomInParams(BaseModel):
    """Arguments of :func:`zoom_in_region`."""

    model_config = ConfigDict(extra="forbid")

    bbox_2d: BoxArg = Field(description=_BOX_HELP)
    image_index: Index = Field(default=0, description=_INDEX_HELP)
    label: str | None = Field(
        default=None, max_length=200, description="What you expect to see in the region."
    )


class CropParams(BaseModel):
    """Arguments of :func:`crop_region`."""

    model_config = ConfigDict(extra="forbid")

    bbox_2d: BoxArg = Field(description=_BOX_HELP)
    image_index: Index = Field(default=0, description=_INDEX_HELP)


def _region_view(
    ctx: ToolContext, tool: str, raw_box: object, index: int, *, upscale: bool, label: str | None
) -> ToolResult:
    check_room(ctx)
    region = resolve_region(ctx, index, raw_box)
    view = derive_view(
        region.view,
        index,
        tool=tool,
        bbox_px=region.bbox_px,
        out_size=sized(ctx, region.view, region.bbox_px, upscale=upscale),
        label=label,
    )
    verb = "Zoomed into" if upscale else "Cropped"
    what = f"{verb} {fmt_box(region.box_view)} of image {index} ({fmt_px(region.bbox_px)})"
    return made_view(
        ctx, what, view, notes=region.notes, remarks=region.remarks, penalty=region.penalty
    )


def zoom_in_region(ctx: ToolContext, params: ZoomInParams) -> ToolResult:
    """Zoom into a region: its original pixels, enlarged to the view size.

    The new view's ``out_size`` is ``ctx.sizer(w, h, upscale=True)`` of the region's size in
    the target view's orientation; it keeps that view's orientation, window and slice.

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: The box (in the target view's pixels), the target view and an optional label.

    Returns:
        A result with the new view; ``notes`` say whether the box was clamped or enlarged.

    Raises:
        InvalidBBoxError: If the box is malformed or outside the view.
        ToolError: If ``image_index`` names no view, or the episode holds too many views.

    Example:
        >>> from medgym.core.view import ViewSpec
        >>> from medgym.tools.base import ImageInfo, ToolContext
        >>> v0 = ViewSpec(bbox_px=(0, 0, 896, 896), out_size=(448, 448))
        >>> ctx = ToolContext(views=(v0,), images=(ImageInfo(width=896, height=896),))
        >>> zoom_in_region(ctx, ZoomInParams(bbox_2d=[0, 0, 112, 112])).view.bbox_px
        (0.0, 0.0, 224.0, 224.0)
    """
    return _region_view(
        ctx, "zoom_in", params.bbox_2d, params.image_index, upscale=True, label=params.label
    )


def crop_region(ctx: ToolContext, params: CropParams) -> ToolResult:
    """Crop a region at (at most) its native size: no upscaling.

    Like :func:`zoom_in_region` but sized with ``ctx.sizer(w, h, upscale=False)``.

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: The box (in the target view's pixels) and the target view.

    Returns:
        A result with the new view.

    Raises:
        InvalidBBoxError: If the box is malformed or outside the view.
        ToolError: If ``image_index`` names no view, or the episode holds too many views.
    """
    return _region_view(ctx, "crop", params.bbox_2d, params.image_index, upscale=False, label=None)


zoom_in: Tool[ZoomInParams] = Tool(
    name="zoom_in",
    description=(
        "Zoom in on a region of an image shown so far: returns the region at full resolution, "
        "enlarged to fill the view. Use it to inspect small findings."
    ),
    params=ZoomInParams,
    fn=zoom_in_region,
)

crop: Tool[CropParams] = Tool(
    name="crop",
    description=(
        "Crop a region of an image shown so far at its native resolution, without enlarging it."
    ),
    params=CropParams,
    fn=crop_region,
)
