"""``rotate`` and ``flip``: re-orient a view by quarter turns and mirrors.

A :class:`~medgym.core.view.ViewSpec` renders its crop rotated first (``rot90`` counter-clockwise
quarter turns) and then mirrored (``flip_h``, ``flip_v``). Rotating or flipping a view that is
already re-oriented must compose with what is there, and a flip followed by a turn is not a turn
followed by the same flip. The eight orientations form the dihedral group of the square; each is
represented here by its 2x2 integer matrix on centred image coordinates (x right, y down), so
composing is a matrix product and reading a spec back is a lookup in a table of all eight.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medgym.core.view import ViewSpec
from medgym.errors import ToolError
from medgym.tools._args import Index
from medgym.tools._geometry import check_room, derive_view, made_view
from medgym.tools.base import Tool, ToolContext, ToolResult

__all__ = [
    "FlipParams",
    "Orientation",
    "RotateParams",
    "compose",
    "flip",
    "flip_view",
    "rotate",
    "rotate_view",
]

Matrix = tuple[tuple[int, int], tuple[int, int]]
Orientation = tuple[int, bool, bool]
"""``(rot90, flip_h, flip_v)`` as in :class:`ViewSpec`."""

_IDENTITY: Matrix = ((1, 0), (0, 1))
# np.rot90 (counter-clockwise on screen, y down) moves the point (x, y) to (y, -x).
_ROT: Matrix = ((0, 1), (-1, 0))
_FLIP_H: Matrix = ((-1, 0), (0, 1))
_FLIP_V: Matrix = ((1, 0), (0, -1))


def _mul(a: Matrix, b: Matrix) -> Matrix:
    """``a @ b``: apply ``b`` first, then ``a``."""
    return (
        (a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]),
        (a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]),
    )


def _matrix(o: Orientation) -> Matrix:
    rot90, flip_h, flip_v = o
    m = _IDENTITY
    for _ in range(rot90 % 4):
        m = _mul(_ROT, m)
    if flip_h:
        m = _mul(_FLIP_H, m)
    if flip_v:
        m = _mul(_FLIP_V, m)
    return m


def _canonical_table() -> dict[Matrix, Orientation]:
    # flip_h + flip_v equals a half turn, so 16 specs name 8 orientations; keep the simplest
    # spelling of each (fewest flips, then fewest turns).
    table: dict[Matrix, Orientation] = {}
    specs = [(r, h, v) for r in range(4) for h in (False, True) for v in (False, True)]
    for spec in sorted(specs, key=lambda s: (s[1] + s[2], s[0])):
        table.setdefault(_matrix(spec), spec)
    return table


_CANONICAL = _canonical_table()


def compose(
    orientation: Orientation, *, quarter_turns: int = 0, flip_h: bool = False, flip_v: bool = False
) -> Orientation:
    """Orientation of a view re-oriented *after* it was rendered with ``orientation``.

    The result renders as ``np.rot90(pixels, quarter_turns)`` followed by the requested mirrors,
    applied to the pixels of ``orientation``.

    Args:
        orientation: ``(rot90, flip_h, flip_v)`` of the existing view.
        quarter_turns: Counter-clockwise quarter turns to add (any integer).
        flip_h: Mirror left-right afterwards.
        flip_v: Mirror top-bottom afterwards.

    Returns:
        The canonical ``(rot90, flip_h, flip_v)`` (never both flips).

    Example:
        >>> compose((0, False, False), quarter_turns=3, flip_h=True)
        (1, False, True)
    """
    m = _matrix(orientation)
    for _ in range(quarter_turns % 4):
        m = _mul(_ROT, m)
    if flip_h:
        m = _mul(_FLIP_H, m)
    if flip_v:
        m = _mul(_FLIP_V, m)
    return _CANONICAL[m]


def _reoriented(
    ctx: ToolContext,
    index: int,
    tool: str,
    *,
    quarter_turns: int = 0,
    h: bool = False,
    v: bool = False,
) -> ViewSpec:
    check_room(ctx)
    target = ctx.view(index)
    rot90, flip_h, flip_v = compose(
        (target.rot90, target.flip_h, target.flip_v),
        quarter_turns=quarter_turns,
        flip_h=h,
        flip_v=v,
    )
    out_w, out_h = target.out_size
    size = (out_h, out_w) if quarter_turns % 2 else (out_w, out_h)
    return derive_view(
        target, index, tool=tool, rot90=rot90, flip_h=flip_h, flip_v=flip_v, out_size=size
    )


class RotateParams(BaseModel):
    """Arguments of :func:`rotate_view`."""

    model_config = ConfigDict(extra="forbid")

    degrees: Index = Field(
        description=(
            "Counter-clockwise angle, a multiple of 90: 90, 180 or 270 (-90 turns clockwise)."
        )
    )
    image_index: Index = Field(
        default=0, description="Which image shown so far to rotate: 0 is the original image."
    )


class FlipParams(BaseModel):
    """Arguments of :func:`flip_view`."""

    model_config = ConfigDict(extra="forbid")

    axis: Literal["horizontal", "vertical"] = Field(
        description="horizontal mirrors left-right; vertical mirrors top-bottom."
    )
    image_index: Index = Field(
        default=0, description="Which image shown so far to flip: 0 is the original image."
    )


def rotate_view(ctx: ToolContext, params: RotateParams) -> ToolResult:
    """Rotate view ``image_index`` counter-clockwise by ``degrees`` (a multiple of 90).

    The new view renders as ``np.rot90`` of the target view's pixels; an odd number of quarter
    turns swaps its width and height.

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: The angle and the target view.

    Returns:
        A result with the new view.

    Raises:
        ToolError: If the angle is not a non-zero multiple of 90 (mod 360), ``image_index``
            names no view, or the episode holds too many views.
    """
    deg = params.degrees
    if deg % 90:
        raise ToolError(
            f"degrees must be a multiple of 90 (90, 180, 270 counter-clockwise, or -90); got {deg}"
        )
    if deg % 360 == 0:
        raise ToolError(
            f"rotating by {deg} degrees leaves the image unchanged; use 90, 180, 270 or -90"
        )
    turns = (deg // 90) % 4
    view = _reoriented(ctx, params.image_index, "rotate", quarter_turns=turns)
    sense = "clockwise" if deg < 0 else "counter-clockwise"
    return made_view(ctx, f"Rotated image {params.image_index} by {abs(deg)} degrees {sense}", view)


def flip_view(ctx: ToolContext, params: FlipParams) -> ToolResult:
    """Mirror view ``image_index`` left-right (``horizontal``) or top-bottom (``vertical``).

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: The axis and the target view.

    Returns:
        A result with the new view.

    Raises:
        ToolError: If ``image_index`` names no view, or the episode holds too many views.
    """
    horizontal = params.axis == "horizontal"
    view = _reoriented(ctx, params.image_index, "flip", h=horizontal, v=not horizontal)
    how = "left-right" if horizontal else "top-bottom"
    return made_view(ctx, f"Mirrored image {params.image_index} {how}", view)


rotate: Tool[RotateParams] = Tool(
    name="rotate",
    description="Rotate an image shown so far by a multiple of 90 degrees counter-clockwise.",
    params=RotateParams,
    fn=rotate_view,
)

flip: Tool[FlipParams] = Tool(
    name="flip",
    description="Mirror an image shown so far left-right (horizontal) or top-bottom (vertical).",
    params=FlipParams,
    fn=flip_view,
)
