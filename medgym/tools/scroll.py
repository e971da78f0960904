"""``scroll``: show another slice of a volume (CT, MR), the same region at the same size.

A volume's slices are stacked along its first axis (``MedImage.pixels[slice]``); a view records
which one it shows (``ViewSpec.slice_index``, the middle slice when unset). ``scroll`` makes a
new view of the same region, orientation, window and size on another slice: an absolute
``slice`` or a relative ``step`` from the slice of the view it scrolls from, so a model can page
through a study the way a radiologist does. In a coronal or sagittal reformat (``set_plane``)
the index counts that plane's rows or columns. Everything stays in original voxel coordinates.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from medgym.errors import ToolError
from medgym.tools._args import Index
from medgym.tools._geometry import check_room, derive_view, made_view, plane_word
from medgym.tools.base import Tool, ToolContext, ToolResult

__all__ = ["ScrollParams", "scroll", "scroll_view"]


class ScrollParams(BaseModel):
    """Arguments of :func:`scroll_view`."""

    model_config = ConfigDict(extra="forbid")

    slice: Index | None = Field(
        default=None,
        description="Slice to show, counting from 0 (give this or step, not both).",
    )
    step: Index | None = Field(
        default=None,
        description=(
            "Slices to move from the slice of the chosen image: 5 moves five slices on, -1 one "
            "back (give this or slice, not both)."
        ),
    )
    image_index: Index = Field(
        default=0,
        description="Which image shown so far to scroll from: 0 is the original image.",
    )


def scroll_view(ctx: ToolContext, params: ScrollParams) -> ToolResult:
    """Show another slice of view ``image_index``'s volume.

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: The slice (absolute) or step (relative) and the view to scroll from.

    Returns:
        A result with the new view: the target view's region, orientation, window and size on
        the new slice.

    Raises:
        ToolError: Neither or both of ``slice`` and ``step``; the image is a single 2D picture;
            the slice is outside the volume or already shown by the view; ``image_index``
            names no view; or the episode holds too many views.
    """
    if (params.slice is None) == (params.step is None):
        raise ToolError("give either slice (the slice to show) or step (slices to move), one")
    target = ctx.view(params.image_index)
    if target.montage is not None and params.step is not None:
        raise ToolError(
            f"image {params.image_index} is an overview of slices {list(target.montage)}: "
            "choose one with slice=..., not a step"
        )
    count = ctx.images[target.image_index].plane_shape(target.reformat)[2]
    word = plane_word(target)
    if ctx.images[target.image_index].num_slices < 2:
        raise ToolError(
            f"image {params.image_index} is a single 2D picture: there are no other slices"
        )
    current = count // 2 if target.slice_index is None else target.slice_index
    new = params.slice if params.slice is not None else current + (params.step or 0)
    if not 0 <= new < count:
        raise ToolError(
            f"{word} {new} is outside the volume: it has {word}s 0..{count - 1} "
            f"(image {params.image_index} shows {word} {current})"
        )
    if new == current and target.montage is None:
        raise ToolError(f"image {params.image_index} already shows {word} {new}")
    check_room(ctx)
    view = derive_view(target, params.image_index, tool="scroll", slice_index=new)
    what = f"{word.capitalize()} {new} of {count} (from image {params.image_index})"
    return made_view(ctx, what, view)


scroll = Tool(
    name="scroll",
    description=(
        "Show another slice of a CT or MR volume shown so far: the same region on the slice you "
        "name, or some slices on from the one you see."
    ),
    params=ScrollParams,
    fn=scroll_view,
)
