"""``overview``: several evenly spaced slices of a volume side by side, each labelled.

A radiologist pages through a study; a model with a few turns cannot. ``overview`` shows
``count`` evenly spaced slices (the first and the last included) of the chosen view's region,
over the whole stack or the slices ``first``-``last`` (to search a long study range by range),
as one image, a grid of tiles each with its slice number burnt into its top-left corner
(``ViewSpec.montage``), so the model can pick where to go in one turn and ``scroll`` there. An
overview is not a region of the image: zooming into it is refused; ``scroll`` with ``slice``
leaves it for one slice.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from medgym.errors import ToolError
from medgym.tools._args import Index
from medgym.tools._geometry import check_room, derive_view, made_view, plane_word
from medgym.tools.base import Tool, ToolContext, ToolResult

__all__ = ["OverviewParams", "overview", "overview_view"]

MIN_TILES, MAX_TILES = 4, 16


class OverviewParams(BaseModel):
    """Arguments of :func:`overview_view`."""

    model_config = ConfigDict(extra="forbid")

    count: Index = Field(
        default=9,
        description=f"How many evenly spaced slices to show side by side, {MIN_TILES}-{MAX_TILES}.",
    )
    image_index: Index = Field(
        default=0, description="Which image shown so far to overview: 0 is the original image."
    )
    first: Index | None = Field(
        default=None, description="First slice of the range to overview (default: slice 0)."
    )
    last: Index | None = Field(
        default=None, description="Last slice of the range to overview (default: the last one)."
    )


def evenly_spaced(slices: int, count: int, first: int = 0) -> tuple[int, ...]:
    """``count`` indices from ``first`` to ``first + slices - 1``, evenly spaced, no repeats."""
    k = min(count, slices)
    if k <= 1:
        return (first,)
    return tuple(sorted({first + round(i * (slices - 1) / (k - 1)) for i in range(k)}))


def overview_view(ctx: ToolContext, params: OverviewParams) -> ToolResult:
    """A montage of evenly spaced slices of view ``image_index``'s region.

    Args:
        ctx: Views so far and image facts.
        params: How many slices and the view to take the region, window and size from.

    Returns:
        A result with the new (montage) view.

    Raises:
        ToolError: ``count`` out of range, a 2D image, a target that is an overview already,
            a ``first``-``last`` range outside the stack or backwards, ``image_index`` naming
            no view, or too many views.
    """
    if not MIN_TILES <= params.count <= MAX_TILES:
        raise ToolError(f"count must be {MIN_TILES} to {MAX_TILES}; got {params.count}")
    target = ctx.view(params.image_index)
    if target.montage is not None:
        raise ToolError(f"image {params.image_index} is an overview already; scroll to a slice")
    slices = ctx.images[target.image_index].plane_shape(target.reformat)[2]
    word = plane_word(target)
    if ctx.images[target.image_index].num_slices < 2:
        raise ToolError(
            f"image {params.image_index} is a single 2D picture: there are no slices to overview"
        )
    first = 0 if params.first is None else params.first
    last = slices - 1 if params.last is None else params.last
    if not 0 <= first < last <= slices - 1:
        raise ToolError(
            f"first and last must be {word}s with 0 <= first < last <= {slices - 1} (the "
            f"{word}s of image {params.image_index}); got first={first}, last={last}"
        )
    check_room(ctx)
    chosen = evenly_spaced(last - first + 1, params.count, first)
    view = derive_view(
        target, params.image_index, tool="overview", slice_index=chosen[0], montage=chosen
    )
    listed = ", ".join(map(str, chosen))
    what = (
        f"Overview of {word}s {listed} of {slices} (from image {params.image_index}), left to "
        f"right and top to bottom, each labelled with its {word} number; scroll with slice=... "
        "to look at one"
    )
    return made_view(ctx, what, view)


overview = Tool(
    name="overview",
    description=(
        "Show evenly spaced slices of a CT or MR volume shown so far side by side, each labelled "
        "with its slice number, to choose where to scroll."
    ),
    params=OverviewParams,
    fn=overview_view,
)
