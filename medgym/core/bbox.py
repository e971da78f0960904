"""Axis-aligned boxes ``(x1, y1, x2, y2)`` with ``x1 < x2`` and ``y1 < y2``.

Units are in the names of the variables that hold them: ``bbox_px`` (pixels of some image),
``bbox_norm`` (0-1), ``bbox_1000`` (Qwen3-style 0-1000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medgym.errors import InvalidBBoxError

BBox = tuple[float, float, float, float]

__all__ = ["BBox", "area", "clamp", "enlarge_to_min_side", "intersection", "iou", "validate_bbox"]


def validate_bbox(box: object, *, name: str = "box", max_aspect: float = 100.0) -> BBox:
    """Check that ``box`` is four finite numbers with ``x1 < x2`` and ``y1 < y2``.

    Args:
        box: Anything; typically what a model wrote.
        name: How the message refers to the box.
        max_aspect: Largest allowed ratio of the long side to the short side.

    Returns:
        The box as a tuple of floats.

    Raises:
        InvalidBBoxError: With a message a model can act on.
    """
    expected = "expected [x1, y1, x2, y2] with x1 < x2 and y1 < y2"
    if isinstance(box, (str, bytes)) or not isinstance(box, Sequence):
        raise InvalidBBoxError(f"{name} {box!r} is not a list of 4 numbers; {expected}")
    if len(box) != 4:
        raise InvalidBBoxError(f"{name} {list(box)!r} has {len(box)} values; {expected}")
    values: list[float] = []
    for v in box:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidBBoxError(f"{name} {list(box)!r} holds {v!r}, not a number; {expected}")
        try:
            f = float(v)
        except OverflowError as e:  # JSON allows integers too large for a float
            raise InvalidBBoxError(f"{name} holds a number too large; {expected}") from e
        if not math.isfinite(f):
            raise InvalidBBoxError(f"{name} {list(box)!r} holds {v!r}; {expected} (finite numbers)")
        values.append(f)
    x1, y1, x2, y2 = values
    if x2 <= x1:
        raise InvalidBBoxError(f"{name} {_fmt_box(values)} has x2 <= x1; {expected}")
    if y2 <= y1:
        raise InvalidBBoxError(f"{name} {_fmt_box(values)} has y2 <= y1; {expected}")
    w, h = x2 - x1, y2 - y1
    aspect = max(w / h, h / w)
    if aspect > max_aspect:
        raise InvalidBBoxError(
            f"{name} {_fmt_box(values)} is {_fmt(w)}x{_fmt(h)} px, aspect ratio {aspect:.0f} > "
            f"{max_aspect:.0f}; draw a less elongated box around the region"
        )
    return (x1, y1, x2, y2)


def _fmt_box(values: list[float]) -> str:
    return "[" + ", ".join(_fmt(v) for v in values) + "]"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def area(box: BBox) -> float:
    """Area of ``box`` (zero for an empty box)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: BBox, b: BBox) -> BBox | None:
    """The overlap of two boxes, or ``None`` when they do not overlap."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2, y2)


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes."""
    inter = intersection(a, b)
    if inter is None:
        return 0.0
    i = area(inter)
    return i / (area(a) + area(b) - i)


def clamp(box: BBox, width: float, height: float) -> BBox | None:
    """Clip ``box`` to ``[0, width] x [0, height]``; ``None`` when nothing is left inside."""
    return intersection(box, (0.0, 0.0, float(width), float(height)))


def enlarge_to_min_side(box: BBox, min_side: float, width: float, height: float) -> BBox:
    """Grow each side of ``box`` shorter than ``min_side`` about the centre, staying in bounds.

    The box is shifted (not shrunk) where growing would cross an image edge; a side longer than
    the image is capped at the image.
    """
    out = list(box)
    for lo, hi, limit in ((0, 2, width), (1, 3, height)):
        side = out[hi] - out[lo]
        target = min(max(side, min_side), limit)
        if target > side:
            centre = (out[lo] + out[hi]) / 2
            start = min(max(centre - target / 2, 0.0), limit - target)
            out[lo], out[hi] = start, start + target
    return (out[0], out[1], out[2], out[3])
