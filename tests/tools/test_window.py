from __future__ import annotations

import math

import numpy as np
import pytest

from medgym.core.images import MedImage, Window
from medgym.core.view import ViewSpec, apply_window, render
from medgym.errors import ToolError
from medgym.tools import PRESETS, ImageInfo, window, zoom_in


@pytest.mark.parametrize(
    ("preset", "level", "width"),
    [
        pytest.param("lung", -600, 1500, id="lung"),
        pytest.param("mediastinum", 50, 350, id="mediastinum"),
        pytest.param("bone", 400, 1800, id="bone"),
        pytest.param("brain", 40, 80, id="brain"),
        pytest.param("abdomen", 50, 400, id="abdomen"),
        pytest.param("soft_tissue", 50, 400, id="soft-tissue"),
        pytest.param("liver", 30, 150, id="liver"),
        pytest.param(" Lung ", -600, 1500, id="case-and-space"),
        pytest.param("soft-tissue", 50, 400, id="hyphen"),
    ],
)
def test_presets(make_ctx, ct_image, preset: str, level: float, width: float) -> None:
    res = window(make_ctx(ct_image), {"preset": preset})
    assert res.view is not None and res.view.window == Window(level=level, width=width)
    assert f"level {level}, width {width} HU" in res.text


def test_all_presets_are_tested() -> None:
    assert set(PRESETS) == {
        "lung",
        "mediastinum",
        "bone",
        "brain",
        "abdomen",
        "soft_tissue",
        "liver",
    }


def test_window_keeps_region_orientation_and_size(make_ctx, ct_image) -> None:
    v0 = ViewSpec(bbox_px=(100, 50, 500, 450), rot90=1, flip_v=True, out_size=(300, 300))
    res = window(make_ctx(ct_image, views=(v0,)), {"level": -500, "width": 1200})
    v = res.view
    assert v is not None
    assert v.model_dump(exclude={"window", "parent", "tool"}) == v0.model_dump(
        exclude={"window", "parent", "tool"}
    )
    assert (v.window, v.parent, v.tool) == (Window(level=-500, width=1200), 0, "window")
    assert res.text == "Windowed image 0 with level -500, width 1200; this is image 1."


def test_window_renders_native_values_and_zoom_keeps_it(make_ctx, ct_image) -> None:
    ctx = make_ctx(ct_image)
    lung = window(ctx, {"preset": "lung"}).view
    assert lung is not None
    out = render(ct_image, lung)[..., 0]
    plain = render(ct_image, ctx.views[0])[..., 0]
    assert not np.array_equal(out, plain)
    # HU -1000 (left edge) is 0 in the default soft-tissue window but 89 in the lung window
    assert plain[0, 0] == 0 and out[0, 0] == apply_window(np.array([-1000]), PRESETS["lung"])[0]
    assert out[0, 0] > 50
    ctx2 = make_ctx(ct_image, views=(*ctx.views, lung))
    z = zoom_in(ctx2, {"bbox_2d": [0, 0, 100, 100], "image_index": 1}).view
    assert z is not None and z.window == PRESETS["lung"]


def _rgb() -> MedImage:
    return MedImage.from_array(np.zeros((64, 64, 3), np.uint8))


def _gray8() -> MedImage:
    return MedImage.from_array(np.zeros((64, 64), np.uint8), modality="CT")


def _mr() -> MedImage:
    return MedImage.from_array(np.arange(4096, dtype=np.uint16).reshape(64, 64), modality="MR")


@pytest.mark.parametrize(
    ("image", "args", "message"),
    [
        pytest.param(None, {}, "window needs `preset` (one of lung, mediastinum", id="nothing"),
        pytest.param(None, {"level": 40}, "got only level=40", id="level-only"),
        pytest.param(None, {"width": 400}, "got only width=400", id="width-only"),
        pytest.param(
            None, {"preset": "lung", "level": 40}, "either `preset` or both", id="preset-and-level"
        ),
        pytest.param(
            None,
            {"preset": "lungs"},
            "unknown window preset `lungs`; did you mean `lung`? (presets: lung,",
            id="did-you-mean",
        ),
        pytest.param(
            None, {"preset": "xyz"}, "unknown window preset `xyz` (presets:", id="unknown"
        ),
        pytest.param(None, {"level": 40, "width": 0}, "greater than 0", id="zero-width"),
        pytest.param(None, {"level": 40, "width": -5}, "greater than 0", id="negative-width"),
        pytest.param(None, {"level": 40, "width": 1e-300}, "too small", id="denormal-width"),
        pytest.param(None, {"level": 1e300, "width": 40}, "less than or equal", id="huge-level"),
        pytest.param(None, {"level": math.nan, "width": 5}, "finite", id="nan-level"),
        pytest.param(None, {"level": 1, "width": math.inf}, "finite", id="inf-width"),
        pytest.param(None, {"level": True, "width": 5}, "true/false", id="bool-level"),
        pytest.param(None, {"level": "a lot", "width": 5}, "level", id="string-level"),
        pytest.param(None, {"preset": 3}, "preset", id="number-preset"),
        pytest.param(None, {"preset": "lung", "image_index": 4}, "does not exist", id="no-view"),
        pytest.param(None, {"preset": "lung", "center": 4}, "unknown argument", id="extra-arg"),
        pytest.param(_rgb(), {"level": 100, "width": 50}, "colour (RGB) image", id="rgb"),
        pytest.param(_gray8(), {"preset": "bone"}, "8-bit display values", id="preset-on-png"),
        pytest.param(_mr(), {"preset": "brain"}, "image 0 is MR", id="preset-on-mr"),
    ],
)
def test_window_errors(make_ctx, ct_image, image, args: dict, message: str) -> None:
    with pytest.raises(ToolError) as info:
        window(make_ctx(image or ct_image), args)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("image", "args"),
    [
        pytest.param(_gray8(), {"level": 100, "width": 60}, id="contrast-stretch-8bit"),
        pytest.param(_mr(), {"level": 2000, "width": 1000}, id="mr-native-units"),
        pytest.param(
            MedImage.from_array(np.zeros((8, 8), np.int16)), {"preset": "lung"}, id="unknown-mod"
        ),
        pytest.param(
            MedImage.from_array(np.zeros((8, 8), np.int16), modality="CT(Computed Tomography)"),
            {"preset": "lung"},
            id="ct-spelled-out",
        ),
    ],
)
def test_window_allowed(make_ctx, image: MedImage, args: dict) -> None:
    res = window(make_ctx(image), args)
    assert res.view is not None and res.view.window is not None
    assert render(image, res.view).dtype == np.uint8


def test_window_on_info_only_context(make_ctx) -> None:
    info = ImageInfo(width=10, height=10, default_window=Window(level=0, width=10))
    res = window(make_ctx(info), {"preset": "bone"})
    assert res.view is not None and res.view.window == PRESETS["bone"]
