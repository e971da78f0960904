"""``reground``: go back to an earlier view, whole or a region of it (a crop of a crop).

After zooming around, a model may lose the context; ``reground`` shows an earlier view again
(the original image by default) as a new view, so the newest image in the conversation is the one
the model wants to reason about. With a box it zooms into that earlier view, like Mini-o3's
``source: observation_i``.
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

__all__ = ["RegroundParams", "reground", "reground_view"]


class RegroundParams(BaseModel):
    """Arguments of :func:`reground_view`."""

    model_config = ConfigDict(extra="forbid")

    image_index: Index = Field(
        default=0, description="Which image shown so far to return to: 0 is the original image."
    )
    bbox_2d: BoxArg | None = Field(
        default=None,
        description=(
            "Optional region of that image as [x1, y1, x2, y2] in its pixels as you saw it; "
            "leave out to see the whole image again."
        ),
    )


def reground_view(ctx: ToolContext, params: RegroundParams) -> ToolResult:
    """Show view ``image_index`` again, or zoom into a region of it.

    Without a box the new view equals the target view (same region, orientation, window and
    size) with ``parent`` set to it. With a box it is a zoom into the target view (sized with
    ``upscale=True``).

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: The target view and an optional box in its pixels.

    Returns:
        A result with the new view.

    Raises:
        InvalidBBoxError: If the box is malformed or outside the view.
        ToolError: If ``image_index`` names no view, or the episode holds too many views.
    """
    check_room(ctx)
    index = params.image_index
    if params.bbox_2d is None:
        target = ctx.view(index)
        view = derive_view(target, index, tool="reground")
        return made_view(ctx, f"Back to image {index} ({fmt_px(target.bbox_px)})", view)
    region = resolve_region(ctx, index, params.bbox_2d)
    view = derive_view(
        region.view,
        index,
        tool="reground",
        bbox_px=region.bbox_px,
        out_size=sized(ctx, region.view, region.bbox_px, upscale=True),
    )
    what = f"Back to {fmt_box(region.box_view)} of image {index} ({fmt_px(region.bbox_px)})"
    return made_view(
        ctx, what, view, notes=region.notes, remarks=region.remarks, penalty=region.penalty
    )


reground: Tool[RegroundParams] = Tool(
    name="reground",
    description=(
        "Return to an image shown earlier (0 is the original), whole or a region of it, to "
        "re-examine it; the result becomes the newest image."
    ),
    params=RegroundParams,
    fn=reground_view,
)
