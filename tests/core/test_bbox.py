from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medgym.core.bbox import (
    area,
    clamp,
    enlarge_to_min_side,
    intersection,
    iou,
    validate_bbox,
)
from medgym.errors import InvalidBBoxError, ToolError

BAD_BOXES = [
    pytest.param([1, 2, 3], "has 3 values", id="three-values"),
    pytest.param([1, 2, 3, 4, 5], "has 5 values", id="five-values"),
    pytest.param([], "has 0 values", id="empty"),
    pytest.param([10, 10, 5, 40], "has x2 <= x1", id="x2-before-x1"),
    pytest.param([10, 40, 50, 40], "has y2 <= y1", id="zero-height"),
    pytest.param([10, 10, 10, 40], "has x2 <= x1", id="zero-width"),
    pytest.param([0, 0, math.nan, 4], "finite", id="nan"),
    pytest.param([0, 0, math.inf, 4], "finite", id="inf"),
    pytest.param(["0", 0, 4, 4], "not a number", id="string-item"),
    pytest.param("0, 0, 4, 4", "not a list of 4 numbers", id="string-box"),
    pytest.param([True, 0, 4, 4], "not a number", id="bool-item"),
    pytest.param([[0, 0], [4, 4]], "has 2 values", id="nested-pairs"),
    pytest.param([[0], 0, 4, 4], "not a number", id="nested-item"),
    pytest.param(None, "not a list of 4 numbers", id="none"),
    pytest.param({"x1": 0}, "not a list of 4 numbers", id="dict"),
    pytest.param([0, 0, 1000, 5], "aspect ratio 200 > 100", id="aspect-200"),
]


@pytest.mark.parametrize(("box", "message"), BAD_BOXES)
def test_validate_bbox_rejects_with_actionable_message(box: object, message: str) -> None:
    with pytest.raises(InvalidBBoxError, match=r"expected|aspect") as info:
        validate_bbox(box)
    assert message in str(info.value)
    assert isinstance(info.value, ToolError)


def test_validate_bbox_message_quotes_the_box() -> None:
    with pytest.raises(InvalidBBoxError) as info:
        validate_bbox([10, 10, 5, 40])
    assert str(info.value) == (
        "box [10, 10, 5, 40] has x2 <= x1; expected [x1, y1, x2, y2] with x1 < x2 and y1 < y2"
    )


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        pytest.param([1, 2, 3, 4], (1.0, 2.0, 3.0, 4.0), id="ints"),
        pytest.param((0.5, 0.25, 9.5, 3), (0.5, 0.25, 9.5, 3.0), id="tuple-floats"),
        pytest.param([0, 0, 100, 1], (0.0, 0.0, 100.0, 1.0), id="aspect-exactly-100"),
    ],
)
def test_validate_bbox_accepts(box: object, expected: tuple[float, ...]) -> None:
    assert validate_bbox(box) == expected


def test_validate_bbox_custom_max_aspect() -> None:
    assert validate_bbox([0, 0, 30, 10], max_aspect=3)
    with pytest.raises(InvalidBBoxError, match="aspect ratio 4 > 3"):
        validate_bbox([0, 0, 40, 10], max_aspect=3)


def test_area_intersection_iou() -> None:
    a, b = (0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 15.0, 15.0)
    assert area(a) == 100
    assert intersection(a, b) == (5.0, 5.0, 10.0, 10.0)
    assert iou(a, b) == pytest.approx(25 / 175)
    assert intersection(a, (10.0, 0.0, 20.0, 10.0)) is None  # touching edges share no area
    assert iou(a, a) == 1.0


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        pytest.param((-5.0, -5.0, 10.0, 10.0), (0.0, 0.0, 10.0, 10.0), id="top-left-out"),
        pytest.param((90.0, 40.0, 120.0, 60.0), (90.0, 40.0, 100.0, 50.0), id="bottom-right-out"),
        pytest.param((100.0, 0.0, 120.0, 10.0), None, id="right-of-image"),
        pytest.param((10.0, 10.0, 20.0, 20.0), (10.0, 10.0, 20.0, 20.0), id="inside"),
    ],
)
def test_clamp(box: tuple[float, ...], expected: tuple[float, ...] | None) -> None:
    assert clamp(box, 100, 50) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("box", "limit", "expected"),
    [
        pytest.param((50.0, 50.0, 54.0, 54.0), 100, (36.0, 36.0, 68.0, 68.0), id="centre"),
        pytest.param((0.0, 0.0, 4.0, 4.0), 100, (0.0, 0.0, 32.0, 32.0), id="corner-shifted"),
        pytest.param((96.0, 10.0, 100.0, 60.0), 100, (68.0, 10.0, 100.0, 60.0), id="one-side"),
        pytest.param((0.0, 0.0, 10.0, 10.0), 20, (0.0, 0.0, 20.0, 20.0), id="capped-by-image"),
    ],
)
def test_enlarge_to_min_side(
    box: tuple[float, ...], limit: int, expected: tuple[float, ...]
) -> None:
    assert enlarge_to_min_side(box, 32, limit, limit) == expected  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    x=st.floats(0, 990),
    y=st.floats(0, 990),
    w=st.floats(0.01, 500),
    h=st.floats(0.01, 500),
    side=st.floats(1, 200),
)
def test_enlarge_keeps_box_inside_and_centre_when_possible(
    x: float, y: float, w: float, h: float, side: float
) -> None:
    box = (x, y, min(x + w, 1000.0), min(y + h, 1000.0))
    out = enlarge_to_min_side(box, side, 1000, 1000)
    assert 0 <= out[0] < out[2] <= 1000 + 1e-9
    assert 0 <= out[1] < out[3] <= 1000 + 1e-9
    assert out[2] - out[0] >= min(side, 1000) - 1e-9 or out[2] - out[0] >= box[2] - box[0]
    # the original box stays inside the enlarged one
    assert out[0] <= box[0] + 1e-9 and out[2] >= box[2] - 1e-9
