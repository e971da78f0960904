from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medgym.core.images import MedImage, Window
from medgym.core.view import ViewSpec, apply_window, full_view, gray_to_rgb, render, render_native
from medgym.errors import ConfigError

ORIENTATIONS = [
    pytest.param(r, h, v, id=f"rot{r * 90}{'-fh' if h else ''}{'-fv' if v else ''}")
    for r, h, v in itertools.product(range(4), (False, True), (False, True))
]
W, H = 120, 80


def coord_image() -> MedImage:
    """RGB image whose red channel is x and green channel is y: every pixel names itself."""
    ys, xs = np.mgrid[0:H, 0:W]
    rgb = np.stack([xs, ys, np.full_like(xs, 7)], axis=-1).astype(np.uint8)
    return MedImage.from_array(rgb)


def gradient_image() -> MedImage:
    """Smooth 16-bit image (CT-like values) with a window spanning its range."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    hu = 20.0 * xs + 13.0 * ys - 1000.0
    return MedImage.from_array(hu.astype(np.int16), default_window=Window(level=400, width=3000))


def oriented(crop_w: int, crop_h: int, rot90: int) -> tuple[int, int]:
    return (crop_h, crop_w) if rot90 % 2 else (crop_w, crop_h)


def spec(box: tuple[float, float, float, float], r: int, h: bool, v: bool, scale: float = 1.0):
    ow, oh = oriented(int(box[2] - box[0]), int(box[3] - box[1]), r)
    size = (round(ow * scale), round(oh * scale))
    return ViewSpec(bbox_px=box, rot90=r, flip_h=h, flip_v=v, out_size=size)


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
def test_every_view_pixel_shows_the_original_pixel_the_mapping_names(
    r: int, h: bool, v: bool
) -> None:
    view = spec((10.0, 20.0, 90.0, 70.0), r, h, v)
    pixels = render(coord_image(), view)
    out_w, out_h = view.out_size
    assert pixels.shape == (out_h, out_w, 3)
    for vy in range(0, out_h, 3):
        for vx in range(0, out_w, 3):
            x1, y1, x2, y2 = view.view_to_original((vx, vy, vx + 1, vy + 1))
            assert (x2 - x1, y2 - y1) == (1, 1)
            assert tuple(pixels[vy, vx, :2]) == (x1, y1)


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
def test_render_orientation_is_rot90_then_flips_of_the_plain_render(
    r: int, h: bool, v: bool
) -> None:
    image = gradient_image()
    box = (5.0, 3.0, 101.0, 67.0)
    plain = ViewSpec(bbox_px=box, out_size=oriented(48, 32, 0))
    turned = ViewSpec(bbox_px=box, rot90=r, flip_h=h, flip_v=v, out_size=oriented(48, 32, r))
    expected = np.rot90(render(image, plain), r)
    if h:
        expected = expected[:, ::-1]
    if v:
        expected = expected[::-1]
    np.testing.assert_array_equal(render(image, turned), expected)


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
@pytest.mark.parametrize(
    "box_view",
    [
        pytest.param((0, 0, 10, 10), id="corner"),
        pytest.param((7, 3, 41, 29), id="inner"),
        pytest.param((20, 11, 50, 50), id="to-edge"),
    ],
)
def test_box_in_view_renders_as_that_part_of_the_view(
    r: int, h: bool, v: bool, box_view: tuple[int, int, int, int]
) -> None:
    image = coord_image()
    view = spec((30.0, 10.0, 80.0, 60.0), r, h, v)  # 50 x 50, scale 1: exact
    orig = view.view_to_original(box_view)
    assert all(float(c).is_integer() for c in orig)
    bw, bh = box_view[2] - box_view[0], box_view[3] - box_view[1]
    sub = ViewSpec(bbox_px=orig, rot90=r, flip_h=h, flip_v=v, out_size=(bw, bh))
    expected = render(image, view)[box_view[1] : box_view[3], box_view[0] : box_view[2]]
    np.testing.assert_array_equal(render(image, sub), expected)


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
def test_box_in_upscaled_view_matches_within_interpolation_tolerance(
    r: int, h: bool, v: bool
) -> None:
    image = gradient_image()
    view = spec((16.0, 8.0, 96.0, 72.0), r, h, v, scale=2.5)  # 80 x 64 -> 200 x 160
    orig_box = (40.0, 20.0, 72.0, 52.0)
    box_view = view.original_to_view(orig_box)
    assert np.allclose(view.view_to_original(box_view), orig_box)
    u1, v1, u2, v2 = (round(c) for c in box_view)
    sub = ViewSpec(bbox_px=orig_box, rot90=r, flip_h=h, flip_v=v, out_size=(u2 - u1, v2 - v1))
    part = render(image, view)[v1:v2, u1:u2].astype(int)
    got = render(image, sub).astype(int)
    diff = np.abs(part - got)
    assert diff.mean() < 1.0
    assert diff.max() <= 4  # border pixels see neighbours outside the crop in the big view


@settings(max_examples=100, deadline=None)
@given(
    r=st.integers(0, 3),
    h=st.booleans(),
    v=st.booleans(),
    x=st.floats(0, 1000),
    y=st.floats(0, 1000),
    w=st.floats(1, 2000),
    hh=st.floats(1, 2000),
    out_w=st.integers(1, 1000),
    out_h=st.integers(1, 1000),
    fr=st.tuples(*[st.floats(-0.5, 1.5)] * 4),
)
def test_view_to_original_and_back_is_identity(
    r: int,
    h: bool,
    v: bool,
    x: float,
    y: float,
    w: float,
    hh: float,
    out_w: int,
    out_h: int,
    fr: tuple[float, float, float, float],
) -> None:
    view = ViewSpec(
        bbox_px=(x, y, x + w, y + hh), rot90=r, flip_h=h, flip_v=v, out_size=(out_w, out_h)
    )
    a = sorted((fr[0] * out_w, fr[2] * out_w))
    b = sorted((fr[1] * out_h, fr[3] * out_h))
    box_view = (a[0], b[0], a[1], b[1])
    back = view.original_to_view(view.view_to_original(box_view))
    assert np.allclose(back, box_view, rtol=1e-9, atol=1e-6)
    orig = view.view_to_original(box_view)
    assert np.allclose(view.view_to_original(view.original_to_view(orig)), orig, atol=1e-6)


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
def test_whole_view_maps_to_its_box(r: int, h: bool, v: bool) -> None:
    view = ViewSpec(bbox_px=(3, 4, 53, 24), rot90=r, flip_h=h, flip_v=v, out_size=(17, 9))
    assert view.view_to_original((0, 0, 17, 9)) == pytest.approx((3, 4, 53, 24))
    assert view.original_to_view((3, 4, 53, 24)) == pytest.approx((0, 0, 17, 9))


def test_full_view_and_render_basics() -> None:
    image = gradient_image()
    view = full_view(image, (60, 40))
    assert view.bbox_px == (0.0, 0.0, W, H)
    out = render(image, view)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, image.pixels)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    assert out[0, 0, 0] < out[-1, -1, 0]  # the gradient survives


def test_render_of_uint8_at_native_size_is_the_pixels() -> None:
    image = coord_image()
    out = render(image, ViewSpec(bbox_px=(0, 0, W, H), out_size=(W, H)))
    np.testing.assert_array_equal(out, image.pixels[0])
    assert not np.shares_memory(out, image.pixels)


def uint8_gray_image() -> MedImage:
    ys, xs = np.mgrid[0:H, 0:W]
    return MedImage.from_array(((xs * 2 + ys) % 256).astype(np.uint8))


@pytest.mark.parametrize(("r", "h", "v"), ORIENTATIONS)
@pytest.mark.parametrize(
    ("make", "channels", "scale"),
    [
        pytest.param(gradient_image, 1, 0.37, id="int16-gray-downscale"),
        pytest.param(gradient_image, 1, 2.5, id="int16-gray-upscale"),
        pytest.param(uint8_gray_image, 1, 1.0, id="uint8-gray-native"),
        pytest.param(coord_image, 3, 0.5, id="rgb-downscale"),
        pytest.param(coord_image, 3, 1.0, id="rgb-native"),
    ],
)
def test_render_native_is_render_before_the_rgb_expansion(
    make: object, channels: int, scale: float, r: int, h: bool, v: bool
) -> None:
    image = make()  # type: ignore[operator]
    view = spec((7.0, 3.0, 101.0, 77.0), r, h, v, scale)
    native = render_native(image, view)
    assert native.shape == (view.out_size[1], view.out_size[0], channels)
    assert native.dtype == np.uint8 and native.flags.c_contiguous and native.flags.writeable
    assert not np.shares_memory(native, image.pixels)
    rgb = gray_to_rgb(native) if channels == 1 else native
    np.testing.assert_array_equal(rgb, render(image, view))


def test_render_rounds_fractional_boxes_outward() -> None:
    image = coord_image()
    out = render(image, ViewSpec(bbox_px=(10.2, 5.9, 19.1, 15.0), out_size=(10, 10)))
    assert out[0, 0, 0] == 10 and out[0, 0, 1] == 5
    assert out[-1, -1, 0] == 19 and out[-1, -1, 1] == 14


@pytest.mark.parametrize(
    ("view", "message"),
    [
        pytest.param(
            ViewSpec(bbox_px=(200, 0, 300, 50), out_size=(10, 10)), "outside", id="box-outside"
        ),
        pytest.param(
            ViewSpec(bbox_px=(0, 0, 10, 10), slice_index=3, out_size=(10, 10)),
            "slice 3",
            id="slice-out-of-range",
        ),
    ],
)
def test_render_errors(view: ViewSpec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render(gradient_image(), view)


def test_render_picks_the_slice() -> None:
    vol = np.stack([np.full((8, 8), i * 50, np.uint8) for i in range(4)])
    image = MedImage.from_array(vol)
    assert render(image, ViewSpec(bbox_px=(0, 0, 8, 8), out_size=(8, 8)))[0, 0, 0] == 100
    got = render(image, ViewSpec(bbox_px=(0, 0, 8, 8), slice_index=3, out_size=(8, 8)))
    assert got[0, 0, 0] == 150


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64], ids=str
)
def test_render_window_matches_the_linear_ramp(dtype: type) -> None:
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    lo = max(-1500, info.min) if info else -1500
    hi = min(3000, info.max) if info else 3000
    values = np.linspace(lo, hi, 64 * 64).reshape(64, 64).astype(dtype)
    win = Window(level=(lo + hi) / 3, width=(hi - lo) / 2)
    image = MedImage.from_array(values, default_window=win)
    out = render(image, ViewSpec(bbox_px=(0, 0, 64, 64), out_size=(64, 64)))[..., 0]
    ref = np.clip((values.astype(np.float64) - win.low) * 255.0 / win.width, 0, 255)
    assert np.abs(out.astype(float) - ref).max() <= 1.0
    np.testing.assert_array_equal(out, apply_window(values, win))


def test_window_in_view_overrides_default() -> None:
    image = gradient_image()
    lung = ViewSpec(bbox_px=(0, 0, W, H), out_size=(W, H), window=Window(level=-600, width=1500))
    default = ViewSpec(bbox_px=(0, 0, W, H), out_size=(W, H))
    assert not np.array_equal(render(image, lung), render(image, default))
    assert render(image, lung)[0, 0, 0] == math.floor((-1000 + 1350) * 255 / 1500)


@pytest.mark.parametrize("size", [(0, 0), (9000, 10)])
def test_out_size_out_of_bounds_is_refused(size: tuple[int, int]) -> None:
    """Issue 18 D3/D14: a 4096x4096 render kept 48 MB per cached view; sides are capped."""
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="out_size"):
        ViewSpec(bbox_px=(0, 0, 10, 10), out_size=size)


def _one_pass_window(pixels: np.ndarray, window: Window) -> np.ndarray:
    """The arithmetic of ``apply_window`` in one pass over the whole array (the reference)."""
    out = pixels.astype(np.float32, copy=True)
    out -= np.float32(window.low)
    out *= np.float32(255.0 / window.width)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((2100, 600, 1), np.float32), ((1500, 1400, 1), np.uint16), ((700, 700, 3), np.float64),
     ((3, 400_000, 1), np.float32), ((448, 448, 1), np.float32), ((0, 5, 1), np.float32)],
)  # fmt: skip
def test_windowing_by_blocks_gives_the_bytes_of_one_pass(shape, dtype) -> None:
    """Large arrays are windowed block by block (cache-sized temporaries); the bytes must be
    those of one pass, at every window including the clipped ends and a rounding-heavy one."""
    rng = np.random.default_rng(sum(shape))
    pixels = rng.normal(300, 900, shape) if dtype != np.uint16 else rng.integers(0, 4096, shape)
    pixels = pixels.astype(dtype)
    for window in (Window(level=40, width=400), Window(level=1000, width=3000.3),
                   Window(level=0.5, width=1e-9)):  # fmt: skip
        got = apply_window(pixels, window)
        assert got.dtype == np.uint8 and got.shape == pixels.shape
        np.testing.assert_array_equal(got, _one_pass_window(pixels, window))
