"""``measure``: the distance in millimetres between two points of an image shown so far.

The model names a segment in the view it sees (``line_2d``: from (x1, y1) to (x2, y2), in the
profile's box convention); both ends go back to original pixels through the view's spec (zoom,
rotation and flips undone), and the pixel spacing of the file (``MedImage.spacing_mm``: row and
column spacing, from DICOM or NIfTI headers) turns the offset into millimetres. Without a
spacing there are no millimetres, and the tool says so.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from medgym.errors import ToolError
from medgym.tools._args import Index, Number
from medgym.tools.base import Tool, ToolContext, ToolResult

__all__ = ["MeasureParams", "measure", "measure_line"]


class MeasureParams(BaseModel):
    """Arguments of :func:`measure_line`."""

    model_config = ConfigDict(extra="forbid")

    line_2d: list[Number] = Field(
        description=(
            "The segment to measure as [x1, y1, x2, y2]: from (x1, y1) to (x2, y2) in the chosen "
            "image as you see it, in the same units as boxes."
        ),
        json_schema_extra={"items": {"type": "number"}, "minItems": 4, "maxItems": 4},
    )
    image_index: Index = Field(
        default=0, description="Which image shown so far to measure on: 0 is the original image."
    )


def measure_line(ctx: ToolContext, params: MeasureParams) -> ToolResult:
    """Measure a segment of view ``image_index`` in millimetres.

    Args:
        ctx: Views so far and image facts (the pixel spacing).
        params: The segment in view pixels and the view.

    Returns:
        A result with the distance (text only, no new view).

    Raises:
        ToolError: A malformed or non-finite segment, an end outside the view, an image
            without pixel spacing, or an ``image_index`` that names no view.
    """
    line = params.line_2d
    if len(line) != 4 or not all(math.isfinite(v) for v in line):
        raise ToolError(f"line_2d must be four finite numbers [x1, y1, x2, y2]; got {line}")
    view = ctx.view(params.image_index)
    w, h = view.out_size
    for x, y in ((line[0], line[1]), (line[2], line[3])):
        if not (0 <= x <= w and 0 <= y <= h):
            raise ToolError(
                f"the point ({x:g}, {y:g}) lies outside image {params.image_index}, which is "
                f"{w}x{h} as you see it"
            )
    spacing = ctx.images[view.image_index].plane_spacing(view.reformat)
    if spacing is None:
        raise ToolError(
            f"image {params.image_index} records no pixel spacing, so distances in millimetres "
            "are unknown; compare sizes in pixels instead"
        )
    (ax, ay), (bx, by) = (
        view.point_to_original(line[0], line[1]),
        view.point_to_original(line[2], line[3]),
    )
    row_mm, col_mm = spacing
    mm = math.hypot((bx - ax) * col_mm, (by - ay) * row_mm)
    return ToolResult(
        text=(
            f"Distance on image {params.image_index} from ({line[0]:g}, {line[1]:g}) to "
            f"({line[2]:g}, {line[3]:g}): {mm:.1f} mm"
        )
    )


measure = Tool(
    name="measure",
    description=(
        "Measure the distance in millimetres between two points of an image shown so far "
        "(needs the pixel spacing a CT or MR file records)."
    ),
    params=MeasureParams,
    fn=measure_line,
)
