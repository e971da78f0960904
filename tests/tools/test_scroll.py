"""``scroll``: another slice of a volume, same region; errors a model can act on."""

from __future__ import annotations

import numpy as np
import pytest

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.core.view import full_view, render
from medgym.envs.config import SessionConfig
from medgym.envs.session import EpisodeSession
from medgym.errors import ToolError
from medgym.tools import TOOLS, ImageInfo, ToolContext


def _volume(slices: int = 12, side: int = 64) -> MedImage:
    """Slice k is filled with the value 10 * k, so a rendered view names its slice."""
    pixels = np.stack([np.full((side, side, 1), 10 * k, np.uint8) for k in range(slices)])
    return MedImage(pixels=pixels)


def _ctx(image: MedImage) -> ToolContext:
    return ToolContext(views=(full_view(image, (64, 64)),), images=(ImageInfo.of(image),))


@pytest.mark.parametrize(
    ("args", "want"),
    [({"slice": 3}, 3), ({"step": -2}, 4), ({"step": 5}, 11), ({"slice": 0}, 0)],
    ids=["absolute", "back", "on", "first"],
)
def test_scroll_moves_to_the_slice(args: dict, want: int) -> None:
    image = _volume()
    res = TOOLS["scroll"](_ctx(image), args)  # the first view shows the middle slice, 6
    assert res.view is not None and res.view.slice_index == want
    assert res.view.bbox_px == (0.0, 0.0, 64.0, 64.0) and res.view.tool == "scroll"
    assert f"Slice {want} of 12" in res.text
    assert int(render(image, res.view)[0, 0, 0]) == 10 * want


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({}, "give either slice"),
        ({"slice": 1, "step": 1}, "give either slice"),
        ({"slice": 12}, r"outside the volume: it has slices 0\.\.11"),
        ({"step": -7}, "outside the volume"),
        ({"slice": 6}, "already shows slice 6"),
        ({"step": 1, "image_index": 3}, "image_index 3 does not exist"),
        ({"step": True}, "true/false"),
    ],
    ids=["neither", "both", "past-end", "before-start", "same", "no-view", "bool"],
)
def test_bad_scrolls_are_tool_errors(args: dict, match: str) -> None:
    with pytest.raises(ToolError, match=match):
        TOOLS["scroll"](_ctx(_volume()), args)


def test_a_2d_picture_has_nothing_to_scroll() -> None:
    flat = MedImage(pixels=np.zeros((1, 32, 32, 1), np.uint8))
    with pytest.raises(ToolError, match="single 2D picture"):
        TOOLS["scroll"](_ctx(flat), {"step": 1})


def test_a_session_scrolls_and_shows_the_slice_as_a_new_image() -> None:
    """Through the episode engine: the model's call becomes a view of the new slice; a bad
    call is an error observation and a penalty, and the episode goes on."""
    image = _volume()
    sample = Sample(id="v", images=(ImageRef(uri="mem://v"),), question="Where is it?",
                    answer="slice 9")  # fmt: skip
    config = SessionConfig.from_dict({"tools": ["scroll", "zoom_in"], "max_turns": 4})
    session = EpisodeSession(sample, config=config, images=[image])
    bad = session.apply_turn(
        '<tool_call>{"name": "scroll", "arguments": {"slice": 40}}</tool_call>'
    )
    assert "outside the volume" in bad.observation and bad.reward < 0
    ok = session.apply_turn('<tool_call>{"name": "scroll", "arguments": {"slice": 9}}</tool_call>')
    assert ok.new_views == [1] and int(session.pixels(1)[0, 0, 0]) == 90
    zoom = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 32, 32], "image_index": 1}}</tool_call>'
    session.apply_turn(zoom)
    assert session.views[2].slice_index == 9  # a zoom into the scrolled view stays on its slice
