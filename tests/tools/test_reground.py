from __future__ import annotations

import pytest

from medgym.core.images import Window
from medgym.core.view import ViewSpec
from medgym.errors import InvalidBBoxError, ToolError
from medgym.tools import ToolContext, reground, zoom_in


@pytest.fixture
def ctx3(make_ctx, ct_image) -> ToolContext:
    """Views: 0 the full image, 1 a lung-windowed rotated view, 2 a zoom into view 0."""
    base = make_ctx(ct_image)
    v1 = ViewSpec(
        bbox_px=(0, 0, 896, 672),
        rot90=1,
        window=Window(level=-600, width=1500),
        out_size=(336, 448),
        parent=0,
        tool="rotate",
    )
    v2 = zoom_in(base, {"bbox_2d": [100, 50, 200, 150]}).view
    assert v2 is not None
    return make_ctx(ct_image, views=(base.views[0], v1, v2))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_reground_without_box_repeats_the_view(ctx3: ToolContext, index: int) -> None:
    res = reground(ctx3, {"image_index": index})
    target = ctx3.views[index]
    assert res.view is not None
    keep = {"parent", "tool", "label"}
    assert res.view.model_dump(exclude=keep) == target.model_dump(exclude=keep)
    assert (res.view.parent, res.view.tool, res.view.label) == (index, "reground", None)
    assert res.text.startswith(f"Back to image {index} (original pixels")
    assert res.text.endswith("this is image 3.")


def test_reground_defaults_to_the_original(ctx3: ToolContext) -> None:
    res = reground(ctx3, {})
    assert res.view is not None and res.view.bbox_px == (0.0, 0.0, 896.0, 672.0)
    assert res.text == "Back to image 0 (original pixels 0-896 x 0-672); this is image 3."


@pytest.mark.parametrize("index", [0, 1, 2])
def test_reground_with_box_is_a_zoom_of_that_view(ctx3: ToolContext, index: int) -> None:
    args = {"bbox_2d": [10, 20, 110, 90], "image_index": index}
    got = reground(ctx3, args).view
    want = zoom_in(ctx3, args).view
    assert got is not None and want is not None
    assert got.model_dump(exclude={"tool"}) == want.model_dump(exclude={"tool"})
    assert got.tool == "reground"


def test_reground_box_in_the_rotated_view(ctx3: ToolContext) -> None:
    # view 1 is the image turned a quarter counter-clockwise at scale 0.5: its top-left corner
    # shows the original top-right corner.
    res = reground(ctx3, {"bbox_2d": [0, 0, 50, 50], "image_index": 1})
    assert res.view is not None and res.view.bbox_px == (796.0, 0.0, 896.0, 100.0)
    assert res.view.rot90 == 1 and res.view.window == Window(level=-600, width=1500)


def test_reground_clamps_like_zoom(ctx3: ToolContext) -> None:
    res = reground(ctx3, {"bbox_2d": [300, 300, 500, 500], "image_index": 2})
    assert res.notes == ("clamped",) and res.penalty > 0
    assert "box clamped to [300, 300, 448, 448]" in res.text


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        pytest.param({"image_index": 3}, ToolError, "images shown so far are 0..2", id="past"),
        pytest.param({"image_index": -1}, ToolError, "does not exist", id="negative"),
        pytest.param({"image_index": "first"}, ToolError, "image_index", id="word"),
        pytest.param({"bbox_2d": [5, 5, 1, 9]}, InvalidBBoxError, "x2 <= x1", id="x2-before-x1"),
        pytest.param({"bbox_2d": "all"}, InvalidBBoxError, "not a list", id="string-box"),
        pytest.param({"bbox_2d": [1, 2]}, InvalidBBoxError, "has 2 values", id="two-numbers"),
        pytest.param(
            {"bbox_2d": [900, 900, 950, 950], "image_index": 2},
            InvalidBBoxError,
            "lies outside image 2, which is 448x448 px",
            id="outside",
        ),
        pytest.param({"source": 1}, ToolError, "unknown argument `source`", id="extra"),
    ],
)
def test_reground_errors(ctx3: ToolContext, args: dict, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        reground(ctx3, args)
    assert message in str(info.value)
