"""``set_plane``: show a volume in another plane (multi-planar reconstruction).

A CT or MR study is usually acquired as axial slices. A coronal plane is one row of every
axial slice, a sagittal plane one column (:meth:`MedImage.plane`): radiologists switch planes to
see how far a finding reaches up and down. The view records the plane
(``ViewSpec.reformat``) and keeps voxel coordinates: a coronal view's pixel ``(x, y)`` is column
``x`` of slice ``y``. Slices are shown top to bottom from the last (superior in DICOM and NIfTI
stacks) to the first (``flip_v``), and the view's height is scaled by the slice spacing over the
pixel spacing, so 2 mm slices of 0.8 mm pixels are not squashed into a flat band.

Only stacks acquired axially (or of unknown plane) are reformatted: a sagittal MR series would
need its own axis mapping, and the tool says so rather than showing a mislabelled plane.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medgym.core.images import Reformat
from medgym.core.view import ViewSpec
from medgym.errors import ToolError
from medgym.tools._args import Index
from medgym.tools._geometry import check_room, image_info, made_view, plane_word, sized
from medgym.tools.base import Tool, ToolContext, ToolResult

__all__ = ["PLANES", "PlaneParams", "set_plane", "set_plane_view"]

#: Plane names the tool takes, and the reformat each is of an axial stack.
PLANES: dict[str, Reformat | None] = {"axial": None, "coronal": "coronal", "sagittal": "sagittal"}


class PlaneParams(BaseModel):
    """Arguments of :func:`set_plane_view`."""

    model_config = ConfigDict(extra="forbid")

    plane: Literal["axial", "coronal", "sagittal"] = Field(
        description="Plane to show: axial (the acquired slices), coronal (front view) or "
        "sagittal (side view)."
    )
    slice: Index | None = Field(
        default=None,
        ge=0,
        description="Which plane to show, counting from 0 (default: the middle one).",
    )
    image_index: Index = Field(
        default=0,
        description="Which image shown so far to take the volume from: 0 is the original.",
    )


def set_plane_view(ctx: ToolContext, params: PlaneParams) -> ToolResult:
    """Show the whole volume of view ``image_index`` in another plane.

    Args:
        ctx: Views so far, image facts (size, slices, spacings, acquired plane), sizer, config.
        params: The plane, the slice of it to show, and the view whose volume to use.

    Returns:
        A result with the new view: the whole plane, the window of the target view.

    Raises:
        ToolError: A 2D image, a stack not acquired axially, the plane already shown, a slice
            outside the volume, ``image_index`` naming no view, or too many views.
    """
    target = ctx.view(params.image_index)
    info = image_info(ctx, target)
    if info.num_slices < 2:
        raise ToolError(
            f"image {params.image_index} is a single 2D picture: it has no other planes"
        )
    if info.acquired_plane not in (None, "axial"):
        raise ToolError(
            f"image {params.image_index} was acquired in the {info.acquired_plane} plane; only "
            "axial stacks can be shown in other planes"
        )
    reformat = PLANES[params.plane]
    if target.reformat == reformat and target.montage is None:
        raise ToolError(
            f"image {params.image_index} already shows the {params.plane} plane; scroll to move "
            "through it"
        )
    width, height, depth = info.plane_shape(reformat)
    index = depth // 2 if params.slice is None else params.slice
    if index >= depth:
        raise ToolError(
            f"the {params.plane} plane has {depth} positions (0..{depth - 1}); got slice={index}"
        )
    check_room(ctx)
    box = (0.0, 0.0, float(width), float(height))
    draft = ViewSpec(
        image_index=target.image_index,
        bbox_px=box,
        reformat=reformat,
        slice_index=index,
        flip_v=reformat is not None,  # the last (superior) slice at the top
        window=target.window,
        out_size=(1, 1),
    )
    view = draft.model_copy(
        update={
            "out_size": sized(ctx, draft, box, upscale=True),
            "parent": params.image_index,
            "tool": "set_plane",
        }
    )
    what = (
        f"The {params.plane} plane, {plane_word(view)} {index} of {depth} (from image "
        f"{params.image_index}), {width}x{height} voxels"
    )
    if reformat is not None:
        what += ", the volume's last slice at the top"
    return made_view(ctx, what, view)


set_plane = Tool(
    name="set_plane",
    description=(
        "Show a CT or MR volume shown so far in another plane: axial, coronal (front view) or "
        "sagittal (side view), to see how far a finding extends between slices."
    ),
    params=PlaneParams,
    fn=set_plane_view,
)
