"""``measure``: millimetres from the file's pixel spacing, through any view's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec, full_view
from medgym.envs.config import SessionConfig
from medgym.envs.session import EpisodeSession
from medgym.errors import ToolError
from medgym.tools import TOOLS, ImageInfo, ToolContext

ROW_MM, COL_MM = 0.5, 0.8


def _image(spacing: tuple[float, float] | None = (ROW_MM, COL_MM)) -> MedImage:
    return MedImage(pixels=np.zeros((1, 80, 100, 1), np.uint8), spacing_mm=spacing)


def _measure(view: ViewSpec, line: list[float], image: MedImage | None = None) -> str:
    image = image or _image()
    ctx = ToolContext(views=(view,), images=(ImageInfo.of(image),))
    return TOOLS["measure"](ctx, {"line_2d": line}).text


@pytest.mark.parametrize(
    ("view", "line", "mm"),
    [
        (ViewSpec(bbox_px=(0, 0, 100, 80), out_size=(100, 80)), [0, 0, 10, 0], 10 * COL_MM),
        (ViewSpec(bbox_px=(0, 0, 100, 80), out_size=(100, 80)), [5, 0, 5, 10], 10 * ROW_MM),
        (ViewSpec(bbox_px=(0, 0, 50, 40), out_size=(100, 80)), [0, 0, 20, 0], 10 * COL_MM),
        (ViewSpec(bbox_px=(0, 0, 100, 80), out_size=(80, 100), rot90=1), [0, 0, 10, 0],
         10 * ROW_MM),
        (ViewSpec(bbox_px=(0, 0, 100, 80), out_size=(100, 80)), [0, 0, 30, 40],
         float(np.hypot(30 * COL_MM, 40 * ROW_MM))),
    ],
    ids=["across", "down", "zoomed-2x", "rotated", "diagonal"],
)  # fmt: skip
def test_distance_uses_row_and_column_spacing_through_the_view(
    view: ViewSpec, line: list[float], mm: float
) -> None:
    assert _measure(view, line).endswith(f": {mm:.1f} mm")


@pytest.mark.parametrize(
    ("line", "image", "match"),
    [
        ([0, 0, 10, 0], _image(None), "records no pixel spacing"),
        ([0, 0, 500, 0], _image(), r"\(500, 0\) lies outside image 0"),
        ([0, 0, 10], _image(), "four finite numbers"),
        ([0, 0, float("nan"), 0], _image(), "finite"),
    ],
    ids=["no-spacing", "outside", "three-numbers", "nan"],
)
def test_bad_measurements_are_tool_errors(line: list, image: MedImage, match: str) -> None:
    view = ViewSpec(bbox_px=(0, 0, 100, 80), out_size=(100, 80))
    with pytest.raises(ToolError, match=match):
        _measure(view, line, image)


def test_a_session_converts_the_profile_units_of_the_segment() -> None:
    """tiny-vlm writes 0-1000 coordinates: line_2d is converted like bbox_2d."""
    image = _image()
    sample = Sample(id="m", images=(ImageRef(uri="mem://m"),), question="How long?")
    config = SessionConfig.from_dict({"tools": ["measure"], "max_turns": 3})
    session = EpisodeSession(sample, config=config, profile="tiny-vlm", images=[image])
    w, h = session.views[0].out_size
    assert (w, h) == full_view(image, (w, h)).out_size
    step = session.apply_turn(
        '<tool_call>{"name": "measure", "arguments": {"line_2d": [0, 0, 500, 0]}}</tool_call>'
    )
    assert f": {50 * COL_MM:.1f} mm" in step.observation  # half the width: 50 px of 0.8 mm
    assert step.new_views == [] and session.metrics["tool_ok"] == 1
