from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medgym.core.images import MedImage, Window
from medgym.core.view import ViewSpec, render
from medgym.errors import InvalidBBoxError, ToolError
from medgym.tools import TOOLS, ImageInfo, ToolContext, crop, fit_size, zoom_in

# ct_image is 896x672; view 0 shows it at 448x336, so one view pixel is two original pixels.

BAD_CALLS = [
    pytest.param({"bbox_2d": [1, 2, 3]}, InvalidBBoxError, "has 3 values", id="three-numbers"),
    pytest.param({"bbox_2d": [1, 2, 3, 4, 5]}, InvalidBBoxError, "has 5 values", id="five"),
    pytest.param(
        {"bbox_2d": [10, 10, 5, 40]},
        InvalidBBoxError,
        "box [10, 10, 5, 40] has x2 <= x1; expected [x1, y1, x2, y2] with x1 < x2 and y1 < y2",
        id="x2-before-x1",
    ),
    pytest.param({"bbox_2d": [10, 40, 50, 20]}, InvalidBBoxError, "y2 <= y1", id="y2-before-y1"),
    pytest.param({"bbox_2d": [0, 0, math.nan, 9]}, InvalidBBoxError, "finite", id="nan"),
    pytest.param({"bbox_2d": [0, 0, math.inf, 9]}, InvalidBBoxError, "finite", id="inf"),
    pytest.param({"bbox_2d": ["1", "2", "30", "40"]}, InvalidBBoxError, "not a number", id="strs"),
    pytest.param({"bbox_2d": "1, 2, 30, 40"}, InvalidBBoxError, "not a list", id="one-string"),
    pytest.param({"bbox_2d": [True, 0, 30, 40]}, InvalidBBoxError, "not a number", id="bool"),
    pytest.param({"bbox_2d": [[1, 2], [30, 40]]}, InvalidBBoxError, "2 values", id="nested"),
    pytest.param({"bbox_2d": None}, InvalidBBoxError, "not a list", id="null"),
    pytest.param({"bbox_2d": [10**400, 0, 1, 1]}, InvalidBBoxError, "too large", id="huge-int"),
    pytest.param(
        {"bbox_2d": [500, 500, 600, 600]},
        InvalidBBoxError,
        "box [500, 500, 600, 600] lies outside image 0, which is 448x336 px",
        id="outside",
    ),
    pytest.param(
        {"bbox_2d": [448, 0, 460, 30]}, InvalidBBoxError, "lies outside", id="touching-edge"
    ),
    pytest.param({"bbox_2d": [20, 20, 20, 60]}, InvalidBBoxError, "x2 <= x1", id="zero-area"),
    pytest.param(
        {"bbox_2d": [0, 0, 404, 4]}, InvalidBBoxError, "aspect ratio 101 > 100", id="aspect-101"
    ),
    pytest.param(
        {"bbox_2d": [0, 0, 9, 9], "image_index": 1},
        ToolError,
        "image_index 1 does not exist; images shown so far are 0..0",
        id="index-past-last",
    ),
    pytest.param(
        {"bbox_2d": [0, 0, 9, 9], "image_index": -1}, ToolError, "does not exist", id="negative"
    ),
    pytest.param(
        {"bbox_2d": [0, 0, 9, 9], "image_index": True}, ToolError, "true/false", id="index-bool"
    ),
    pytest.param(
        {"bbox_2d": [0, 0, 9, 9], "image_index": 0.5}, ToolError, "image_index", id="index-frac"
    ),
    pytest.param({}, ToolError, "missing argument `bbox_2d`", id="missing-box"),
    pytest.param(
        {"bbox_2d": [0, 0, 9, 9], "zoom": 2}, ToolError, "unknown argument `zoom`", id="extra"
    ),
]
LABEL_CALLS = [
    pytest.param({"bbox_2d": [0, 0, 9, 9], "label": "x" * 201}, "label", id="label-too-long"),
    pytest.param({"bbox_2d": [0, 0, 9, 9], "label": 5}, "label", id="label-number"),
]


@pytest.mark.parametrize("tool", [zoom_in, crop], ids=lambda t: t.name)
@pytest.mark.parametrize(("args", "error", "message"), BAD_CALLS)
def test_bad_calls_raise_model_readable_errors(
    make_ctx, ct_image, tool, args: dict, error: type, message: str
) -> None:
    with pytest.raises(error) as info:
        tool(make_ctx(ct_image), args)
    assert message in str(info.value)


@pytest.mark.parametrize(("args", "message"), LABEL_CALLS)
def test_bad_labels(make_ctx, ct_image, args: dict, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        zoom_in(make_ctx(ct_image), args)
    with pytest.raises(ToolError, match="unknown argument `label`"):
        crop(make_ctx(ct_image), args)


def test_arguments_must_be_an_object(make_ctx, ct_image) -> None:
    with pytest.raises(ToolError, match="must be a JSON object; got list"):
        zoom_in(make_ctx(ct_image), [0, 0, 9, 9])  # type: ignore[arg-type]


def test_zoom_in_maps_view_box_to_original_pixels(make_ctx, ct_image) -> None:
    res = zoom_in(make_ctx(ct_image), {"bbox_2d": [100, 50, 200, 150], "label": "nodule"})
    assert res.ok and res.notes == () and res.penalty == 0.0
    v = res.view
    assert v is not None
    assert v.bbox_px == (200.0, 100.0, 400.0, 300.0)
    assert v.out_size == (448, 448)
    assert (v.parent, v.tool, v.label, v.image_index) == (0, "zoom_in", "nodule", 0)
    assert res.text == (
        "Zoomed into [100, 50, 200, 150] of image 0 (original pixels 200-400 x 100-300); "
        "this is image 1."
    )


@pytest.mark.parametrize(
    ("box", "bbox_px", "notes", "phrase"),
    [
        pytest.param(
            [400, 300, 500, 400],
            (800.0, 600.0, 896.0, 672.0),
            ("clamped",),
            "box clamped to [400, 300, 448, 336]",
            id="partly-outside",
        ),
        pytest.param(
            [100, 100, 105, 105],
            (189.0, 189.0, 221.0, 221.0),
            ("enlarged",),
            "enlarged about its centre to 32x32 px",
            id="tiny-enlarged",
        ),
        pytest.param(
            [0, 0, 2, 2], (0.0, 0.0, 32.0, 32.0), ("enlarged",), "(4x4 original px)", id="corner"
        ),
        pytest.param(
            [-10, -10, 5, 5],
            (0.0, 0.0, 32.0, 32.0),
            ("clamped", "enlarged"),
            "box clamped to [0, 0, 5, 5]",
            id="clamped-and-enlarged",
        ),
        pytest.param(
            [10, 10, 10.001, 10.001],
            (4.0, 4.0, 37.0, 37.0),
            ("enlarged",),
            "(1x1 original px) was enlarged",
            id="sub-pixel",
        ),
        pytest.param(
            [10.3, 10.3, 60.7, 60.7],
            (20.0, 20.0, 122.0, 122.0),
            (),
            "original pixels 20-122 x 20-122",
            id="rounded-outward",
        ),
        pytest.param(
            [0, 100, 448, 110],
            (0.0, 194.0, 896.0, 226.0),
            ("enlarged",),
            "original pixels 0-896 x 194-226",
            id="wide-strip-enlarged-height",
        ),
    ],
)
def test_zoom_in_clamps_rounds_and_enlarges(
    make_ctx, ct_image, box, bbox_px, notes, phrase
) -> None:
    res = zoom_in(make_ctx(ct_image), {"bbox_2d": box})
    assert res.view is not None and res.view.bbox_px == bbox_px
    assert res.notes == notes
    assert phrase in res.text
    assert res.penalty == (0.05 if "clamped" in notes else 0.0)


def test_clamp_penalty_and_visible_fraction_are_config(make_ctx, ct_image) -> None:
    res = zoom_in(make_ctx(ct_image, clamp_penalty=0.2), {"bbox_2d": [400, 300, 500, 400]})
    assert res.penalty == 0.2
    with pytest.raises(InvalidBBoxError, match="only 17% of box"):
        zoom_in(make_ctx(ct_image, min_visible_fraction=0.5), {"bbox_2d": [400, 300, 500, 400]})


def test_min_box_side_is_config(make_ctx, ct_image) -> None:
    res = zoom_in(make_ctx(ct_image, min_box_side_px=64), {"bbox_2d": [100, 100, 105, 105]})
    assert res.view is not None and res.view.bbox_px == (173.0, 173.0, 237.0, 237.0)


def test_max_views_is_enforced(make_ctx, ct_image) -> None:
    ctx = make_ctx(ct_image, max_views=1)
    with pytest.raises(ToolError, match="already shows 1 images, the most allowed"):
        zoom_in(ctx, {"bbox_2d": [0, 0, 100, 100]})


def test_crop_keeps_native_size(make_ctx, ct_image) -> None:
    res = crop(make_ctx(ct_image), {"bbox_2d": [10, 10, 60, 35]})
    assert res.view is not None
    assert res.view.bbox_px == (20.0, 20.0, 120.0, 70.0)
    assert res.view.out_size == fit_size(100, 50, upscale=False) == (112, 56)
    assert res.view.tool == "crop" and res.text.startswith("Cropped [10, 10, 60, 35] of image 0")
    big = zoom_in(make_ctx(ct_image), {"bbox_2d": [10, 10, 60, 35]}).view
    assert big is not None and big.out_size == (448, 224)


def test_sizer_gets_the_oriented_region_size(ct_image) -> None:
    seen = []

    def sizer(w: float, h: float, *, upscale: bool) -> tuple[int, int]:
        seen.append((w, h, upscale))
        return (77, 55)

    v0 = ViewSpec(bbox_px=(0, 0, 896, 672), rot90=1, out_size=(336, 448))
    ctx = ToolContext(views=(v0,), images=(ImageInfo.of(ct_image),), sizer=sizer)
    res = zoom_in(ctx, {"bbox_2d": [0, 0, 50, 100]})  # 50 wide, 100 tall as seen
    assert res.view is not None and res.view.out_size == (77, 55)
    x1, y1, x2, y2 = res.view.bbox_px
    assert (x2 - x1, y2 - y1) == (200, 100)  # rotated back: wide in the original
    assert seen == [(100.0, 200.0, True)]


def test_zoom_keeps_window_slice_and_orientation_of_the_target(make_ctx, ct_image) -> None:
    lung = Window(level=-600, width=1500)
    v0 = ViewSpec(bbox_px=(0, 0, 896, 672), rot90=3, flip_h=True, window=lung, out_size=(336, 448))
    v1 = ViewSpec(bbox_px=(0, 0, 896, 672), slice_index=0, out_size=(448, 336), parent=0)
    ctx = make_ctx(ct_image, views=(v0, v1))
    a = zoom_in(ctx, {"bbox_2d": [0, 0, 100, 100]}).view
    assert a is not None and (a.rot90, a.flip_h, a.flip_v, a.window) == (3, True, False, lung)
    b = zoom_in(ctx, {"bbox_2d": [0, 0, 100, 100], "image_index": 1}).view
    assert b is not None and (b.slice_index, b.parent, b.rot90) == (0, 1, 0)


def test_zoom_into_a_zoomed_view(make_ctx, ct_image) -> None:
    ctx = make_ctx(ct_image)
    v1 = zoom_in(ctx, {"bbox_2d": [100, 50, 200, 150]}).view  # 200-400 x 100-300 at 448 px
    assert v1 is not None
    ctx2 = ToolContext(views=(*ctx.views, v1), images=ctx.images)
    res = zoom_in(ctx2, {"bbox_2d": [224, 224, 448, 448], "image_index": 1})
    assert res.view is not None and res.view.bbox_px == (300.0, 200.0, 400.0, 300.0)
    assert res.view.parent == 1 and "this is image 2" in res.text


def test_alias_is_the_deepeyes_name(make_ctx, ct_image) -> None:
    args = {"bbox_2d": [100, 50, 200, 150], "label": "x"}
    assert TOOLS["image_zoom_in_tool"](make_ctx(ct_image), args) == zoom_in(
        make_ctx(ct_image), args
    )


ORIENTATIONS = [
    pytest.param(r, h, v, id=f"rot{r * 90}{'-fh' if h else ''}{'-fv' if v else ''}")
    for r, h, v in itertools.product(range(4), (False, True), (False, True))
]


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
def test_zoom_on_reoriented_view_finds_the_marker(r: int, h: bool, v: bool) -> None:
    pixels = np.zeros((200, 300), np.uint8)
    marker = (220, 40, 230, 50)  # x1, y1, x2, y2 in original pixels
    pixels[marker[1] : marker[3], marker[0] : marker[2]] = 255
    image = MedImage.from_array(pixels)
    size = (300, 450) if r % 2 else (450, 300)
    v0 = ViewSpec(bbox_px=(0, 0, 300, 200), rot90=r, flip_h=h, flip_v=v, out_size=size)
    ctx = ToolContext(views=(v0,), images=(ImageInfo.of(image),))
    seen = render(image, v0)[..., 0]
    ys, xs = np.nonzero(seen > 128)
    box = [xs.min() - 3, ys.min() - 3, xs.max() + 4, ys.max() + 4]
    res = zoom_in(ctx, {"bbox_2d": [int(c) for c in box]})
    assert res.view is not None
    x1, y1, x2, y2 = res.view.bbox_px
    assert x1 <= marker[0] and y1 <= marker[1] and x2 >= marker[2] and y2 >= marker[3]
    assert max(x2 - x1, y2 - y1) <= 32  # marker (10 px) + padding, enlarged to the min side
    zoomed = render(image, res.view)[..., 0]
    assert zoomed.shape == (448, 448)
    assert (zoomed > 128).mean() > 0.05  # the marker fills a good part of the zoom


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS[::3])
def test_zoom_renders_the_part_of_the_view_it_names(r: int, h: bool, v: bool) -> None:
    ys, xs = np.mgrid[0:672, 0:896]
    hu = (xs * 1.5 + ys * 2.0 - 1000).astype(np.int16)
    image = MedImage.from_array(hu, default_window=Window(level=200, width=2600))
    size = (336, 448) if r % 2 else (448, 336)
    v0 = ViewSpec(bbox_px=(0, 0, 896, 672), rot90=r, flip_h=h, flip_v=v, out_size=size)
    ctx = ToolContext(views=(v0,), images=(ImageInfo.of(image),))
    box = [40, 60, 200, 180]
    res = zoom_in(ctx, {"bbox_2d": box})
    assert res.view is not None
    part = render(image, v0)[box[1] : box[3], box[0] : box[2]]
    zoom = render(image, res.view)
    small = cv2.resize(zoom, (part.shape[1], part.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(small.astype(int) - part.astype(int))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 4


@settings(max_examples=100, deadline=None)
@given(
    orientation=st.tuples(st.integers(0, 3), st.booleans(), st.booleans()),
    view_box=st.tuples(st.integers(0, 400), st.integers(0, 300), st.integers(20, 500)),
    fr=st.tuples(*[st.floats(-0.2, 1.2)] * 4),
)
def test_zoom_region_is_whole_pixels_inside_the_image_covering_the_box(
    orientation: tuple[int, bool, bool],
    view_box: tuple[int, int, int],
    fr: tuple[float, float, float, float],
) -> None:
    info = ImageInfo(width=896, height=672)
    r, h, v = orientation
    x, y, side = view_box
    bbox = (float(x), float(y), float(min(x + side, 896)), float(min(y + side, 672)))
    v0 = ViewSpec(bbox_px=bbox, rot90=r, flip_h=h, flip_v=v, out_size=(300, 200))
    ctx = ToolContext(views=(v0,), images=(info,))
    xs, ys = sorted((fr[0] * 300, fr[2] * 300)), sorted((fr[1] * 200, fr[3] * 200))
    box = [xs[0], ys[0], xs[1], ys[1]]
    try:
        res = zoom_in(ctx, {"bbox_2d": box})
    except InvalidBBoxError:
        return
    assert res.view is not None
    x1, y1, x2, y2 = res.view.bbox_px
    assert all(float(c).is_integer() for c in res.view.bbox_px)
    assert 0 <= x1 < x2 <= 896 and 0 <= y1 < y2 <= 672
    assert min(x2 - x1, y2 - y1) >= 32
    cx1, cy1, cx2, cy2 = v0.view_to_original(
        (max(box[0], 0), max(box[1], 0), min(box[2], 300), min(box[3], 200))
    )
    eps = 1e-6
    assert x1 <= cx1 + eps and y1 <= cy1 + eps and x2 >= cx2 - eps and y2 >= cy2 - eps
    assert ("clamped" in res.notes) == (box[0] < 0 or box[1] < 0 or box[2] > 300 or box[3] > 200)
