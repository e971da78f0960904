from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medgym.core.images import MedImage
from medgym.core.view import ViewSpec, render
from medgym.errors import ToolError
from medgym.tools import ImageInfo, ToolContext, compose, flip, rotate

W, H = 36, 24


def coord_image() -> MedImage:
    ys, xs = np.mgrid[0:H, 0:W]
    rgb = np.stack([xs * 7, ys * 10, (xs + ys) % 5], axis=-1).astype(np.uint8)
    return MedImage.from_array(rgb)


IMAGE = coord_image()
ORIENTATIONS = list(itertools.product(range(4), (False, True), (False, True)))
OPS = [
    pytest.param(("rotate", 90), id="rot90"),
    pytest.param(("rotate", 180), id="rot180"),
    pytest.param(("rotate", 270), id="rot270"),
    pytest.param(("rotate", -90), id="rot-90"),
    pytest.param(("rotate", 450), id="rot450"),
    pytest.param(("flip", "horizontal"), id="flip-h"),
    pytest.param(("flip", "vertical"), id="flip-v"),
]


def view_for(r: int, h: bool, v: bool, box=(4.0, 2.0, 34.0, 22.0)) -> ViewSpec:
    w, hh = int(box[2] - box[0]), int(box[3] - box[1])
    size = (hh, w) if r % 2 else (w, hh)
    return ViewSpec(bbox_px=box, rot90=r, flip_h=h, flip_v=v, out_size=size)


def apply(op: tuple[str, object], ctx: ToolContext, index: int) -> ViewSpec:
    name, arg = op
    if name == "rotate":
        res = rotate(ctx, {"degrees": arg, "image_index": index})
    else:
        res = flip(ctx, {"axis": arg, "image_index": index})
    assert res.view is not None
    return res.view


def expected_pixels(op: tuple[str, object], pixels: np.ndarray) -> np.ndarray:
    name, arg = op
    if name == "rotate":
        return np.rot90(pixels, int(arg) // 90)  # type: ignore[call-overload]
    return pixels[:, ::-1] if arg == "horizontal" else pixels[::-1]


@pytest.mark.parametrize(
    ("r", "h", "v"),
    [pytest.param(*o, id=f"from-rot{o[0] * 90}{'-fh' * o[1]}{'-fv' * o[2]}") for o in ORIENTATIONS],
)
@pytest.mark.parametrize("op", OPS)
def test_reorienting_a_view_reorients_its_pixels(r: int, h: bool, v: bool, op) -> None:
    parent = view_for(r, h, v)
    ctx = ToolContext(views=(parent,), images=(ImageInfo.of(IMAGE),))
    child = apply(op, ctx, 0)
    np.testing.assert_array_equal(render(IMAGE, child), expected_pixels(op, render(IMAGE, parent)))
    assert child.bbox_px == parent.bbox_px and not (child.flip_h and child.flip_v)
    assert (child.parent, child.tool) == (0, op[0])


@settings(max_examples=60, deadline=None)
@given(
    start=st.sampled_from(ORIENTATIONS),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("rotate"), st.sampled_from([90, 180, 270, -90, -270, 630])),
            st.tuples(st.just("flip"), st.sampled_from(["horizontal", "vertical"])),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_any_sequence_of_turns_and_flips_composes(start, ops) -> None:
    views = [view_for(*start)]
    pixels = render(IMAGE, views[0])
    for op in ops:
        ctx = ToolContext(views=tuple(views), images=(ImageInfo.of(IMAGE),))
        views.append(apply(op, ctx, len(views) - 1))
        pixels = expected_pixels(op, pixels)
    np.testing.assert_array_equal(render(IMAGE, views[-1]), pixels)


def test_compose_is_canonical_and_covers_all_eight() -> None:
    seen = {
        compose((r, h, v), quarter_turns=k, flip_h=fh)
        for (r, h, v), k, fh in itertools.product(ORIENTATIONS, range(4), (False, True))
    }
    assert len(seen) == 8
    assert all(not (h and v) for _, h, v in seen)
    assert compose((1, False, False), quarter_turns=3) == (0, False, False)
    assert compose((0, True, True)) == (2, False, False)


def test_rotation_swaps_size_of_non_square_views() -> None:
    v0 = ViewSpec(bbox_px=(0, 0, W, H), out_size=(72, 48))
    ctx = ToolContext(views=(v0,), images=(ImageInfo.of(IMAGE),))
    a = rotate(ctx, {"degrees": 90})
    b = rotate(ctx, {"degrees": 180})
    assert a.view is not None and a.view.out_size == (48, 72) and a.view.rot90 == 1
    assert b.view is not None and b.view.out_size == (72, 48)
    assert a.text == "Rotated image 0 by 90 degrees counter-clockwise; this is image 1."
    c = rotate(ctx, {"degrees": -90})
    assert c.view is not None and c.view.rot90 == 3
    assert "by 90 degrees clockwise" in c.text
    assert flip(ctx, {"axis": "horizontal"}).text == (
        "Mirrored image 0 left-right; this is image 1."
    )


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        pytest.param(rotate, {"degrees": 45}, "multiple of 90", id="rot45"),
        pytest.param(rotate, {"degrees": 0}, "leaves the image unchanged", id="rot0"),
        pytest.param(rotate, {"degrees": 360}, "leaves the image unchanged", id="rot360"),
        pytest.param(rotate, {"degrees": 90.5}, "degrees", id="fractional"),
        pytest.param(rotate, {"degrees": True}, "true/false", id="bool"),
        pytest.param(rotate, {"degrees": "ninety"}, "degrees", id="word"),
        pytest.param(rotate, {}, "missing argument `degrees`", id="missing"),
        pytest.param(rotate, {"degrees": 90, "image_index": 3}, "does not exist", id="no-view"),
        pytest.param(rotate, {"angle": 90}, "unknown argument `angle`", id="deepeyes-arg"),
        pytest.param(flip, {"axis": "diagonal"}, "'horizontal' or 'vertical'", id="bad-axis"),
        pytest.param(flip, {}, "missing argument `axis`", id="no-axis"),
        pytest.param(flip, {"axis": "vertical", "image_index": -2}, "does not exist", id="neg"),
    ],
)
def test_orient_errors(tool, args: dict, message: str) -> None:
    ctx = ToolContext(views=(view_for(0, False, False),), images=(ImageInfo.of(IMAGE),))
    with pytest.raises(ToolError) as info:
        tool(ctx, args)
    assert message in str(info.value)
