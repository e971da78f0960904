"""``overview``: evenly spaced slices side by side, labelled; a montage is no region to zoom."""

from __future__ import annotations

import numpy as np
import pytest

from medgym.core.images import MedImage
from medgym.core.view import full_view, montage_grid, render
from medgym.errors import ToolError
from medgym.tools import TOOLS, ImageInfo, ToolContext
from medgym.tools.overview import evenly_spaced


def _volume(slices: int = 20) -> MedImage:
    return MedImage(
        pixels=np.stack([np.full((64, 64, 1), 10 * k, np.uint8) for k in range(slices)])
    )


def _ctx(image: MedImage, *views) -> ToolContext:  # type: ignore[no-untyped-def]
    first = full_view(image, (192, 192))
    return ToolContext(views=(first, *views), images=(ImageInfo.of(image),))


@pytest.mark.parametrize(("slices", "count", "want"), [(20, 4, (0, 6, 13, 19)), (3, 9, (0, 1, 2)),
                                                       (100, 5, (0, 25, 50, 74, 99))])  # fmt: skip
def test_evenly_spaced_includes_both_ends(slices: int, count: int, want: tuple) -> None:
    assert evenly_spaced(slices, count) == want


def test_overview_tiles_the_slices_with_their_numbers() -> None:
    image = _volume()
    res = TOOLS["overview"](_ctx(image), {"count": 4})
    view = res.view
    assert view is not None and view.montage == (0, 6, 13, 19) and view.tool == "overview"
    assert "slices 0, 6, 13, 19 of 20" in res.text and "this is image 1" in res.text
    px = render(image, view)
    cols, rows = montage_grid(4)
    tile = 192 // cols
    centres = [int(px[r * tile + tile // 2, c * tile + tile // 2, 0]) for r in range(rows)
               for c in range(cols)]  # fmt: skip
    assert centres == [0, 60, 130, 190]  # each tile shows its own slice
    corner = px[: tile // 4, : tile // 2, 0]
    assert corner.max() == 255  # the slice number is burnt in (white on the dark first slice)


@pytest.mark.parametrize(
    ("tool", "args", "match"),
    [
        ("zoom_in", {"bbox_2d": [0, 0, 50, 50], "image_index": 1}, "is an overview of slices"),
        ("scroll", {"step": 1, "image_index": 1}, "choose one with slice"),
        ("overview", {"image_index": 1}, "overview already"),
        ("overview", {"count": 30}, "count must be 4 to 16"),
    ],
    ids=["zoom-into-overview", "step-from-overview", "overview-of-overview", "too-many"],
)
def test_what_an_overview_refuses(tool: str, args: dict, match: str) -> None:
    image = _volume()
    ov = TOOLS["overview"](_ctx(image), {"count": 4}).view
    with pytest.raises(ToolError, match=match):
        TOOLS[tool](_ctx(image, ov), args)


def test_an_overview_of_a_range_narrows_a_long_stack_down() -> None:
    image = _volume(20)
    res = TOOLS["overview"](_ctx(image), {"count": 4, "first": 10, "last": 16})
    assert res.view is not None and res.view.montage == (10, 12, 14, 16)
    assert "slices 10, 12, 14, 16 of 20" in res.text
    only_last = TOOLS["overview"](_ctx(image), {"count": 4, "last": 3}).view
    assert only_last is not None and only_last.montage == (0, 1, 2, 3)


@pytest.mark.parametrize(
    "args", [{"first": 5, "last": 5}, {"first": 12, "last": 4}, {"last": 20}, {"first": -1}],
    ids=["empty", "backwards", "past-the-end", "negative"],
)  # fmt: skip
def test_a_range_outside_the_stack_is_refused(args: dict) -> None:
    with pytest.raises(ToolError, match="0 <= first < last <= 19"):
        TOOLS["overview"](_ctx(_volume(20)), args)


def test_scroll_with_a_slice_leaves_the_overview_for_that_slice() -> None:
    image = _volume()
    ov = TOOLS["overview"](_ctx(image), {"count": 4}).view
    res = TOOLS["scroll"](_ctx(image, ov), {"slice": 13, "image_index": 1})
    assert res.view is not None and res.view.montage is None and res.view.slice_index == 13
    assert int(render(image, res.view)[10, 10, 0]) == 130


def test_a_2d_picture_has_no_overview() -> None:
    flat = MedImage(pixels=np.zeros((1, 32, 32, 1), np.uint8))
    with pytest.raises(ToolError, match="single 2D picture"):
        TOOLS["overview"](_ctx(flat), {})


def test_a_session_counts_the_slices_an_overview_shows() -> None:
    from medgym.core.images import ImageRef
    from medgym.core.sample import Sample
    from medgym.envs.config import SessionConfig
    from medgym.envs.session import EpisodeSession

    sample = Sample(id="o", images=(ImageRef(uri="mem://o"),), question="Where?")
    config = SessionConfig.from_dict({"tools": ["overview", "scroll"], "max_turns": 4})
    session = EpisodeSession(sample, config=config, images=[_volume()])
    assert session.metrics["slices_viewed"] == 1  # the middle slice, 10
    session.apply_turn('<tool_call>{"name": "overview", "arguments": {"count": 4}}</tool_call>')
    assert session.metrics["slices_viewed"] == 5  # + 0, 6, 13, 19
    session.apply_turn(
        '<tool_call>{"name": "scroll", "arguments": {"slice": 13, "image_index": 1}}</tool_call>'
    )
    assert session.metrics["slices_viewed"] == 5  # 13 was seen already


@pytest.mark.parametrize(("side", "count"), [(140, 16), (448, 16), (448, 9), (96, 4)])
def test_the_label_box_holds_every_pixel_of_a_tiles_number(side: int, count: int) -> None:
    """Pixel readers mask it: a number outside the box would read as a bright finding."""
    from medgym.core.view import montage_label_box

    black = MedImage(pixels=np.zeros((200, 64, 64, 1), np.uint8))
    view = TOOLS["overview"](
        ToolContext(views=(full_view(black, (side, side)),), images=(ImageInfo.of(black),)),
        {"count": count, "first": 100, "last": 199},
    ).view
    assert view is not None and view.montage is not None
    px = render(black, view)[:, :, 0]
    cols, _ = montage_grid(count)
    tw, th = side // cols, side // cols
    for i, k in enumerate(view.montage):
        r, c = divmod(i, cols)
        tile = px[r * th : (r + 1) * th, c * tw : (c + 1) * tw]
        x0, y0, x1, y1 = montage_label_box(tw, th, str(k))
        assert tile.max() > 0  # the number is there
        outside = tile.copy()
        outside[y0:y1, x0:x1] = 0
        assert outside.max() == 0, (k, np.argwhere(outside > 0)[:3])
        assert (x1 - x0) * (y1 - y0) < 0.25 * tw * th  # and the box is no bigger than it needs
