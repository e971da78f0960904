from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medgym.core.images import MedImage, Window
from medgym.core.view import ViewSpec, full_view, render
from medgym.errors import ToolError
from medgym.tools import (
    ALIASES,
    ALL_TOOLS,
    TOOLS,
    VOLUME_TOOLS,
    ZOOM_TOOLS,
    ImageInfo,
    ToolContext,
    ToolResult,
)


def test_registry_holds_all_tools_in_order() -> None:
    assert ALL_TOOLS == ("zoom_in", "crop", "reground", "window", "rotate", "flip")
    assert (
        tuple(TOOLS) == VOLUME_TOOLS == (*ALL_TOOLS, "scroll", "set_plane", "overview", "measure")
    )
    assert len(TOOLS.schemas()) == len(VOLUME_TOOLS)
    assert set(ZOOM_TOOLS) <= set(ALL_TOOLS)


def test_aliases_resolve() -> None:
    assert ALIASES == {"image_zoom_in_tool": "zoom_in"}
    assert TOOLS["image_zoom_in_tool"] is TOOLS["zoom_in"]
    assert "image_zoom_in_tool" in TOOLS and "zoom" not in TOOLS


def test_unknown_tool_suggests_the_near_name() -> None:
    with pytest.raises(ToolError, match=r"unknown tool `zoom`; did you mean `zoom_in`\?"):
        TOOLS["zoom"]


def test_zoom_subset_keeps_the_alias() -> None:
    zoom_only = TOOLS.subset(ZOOM_TOOLS)
    assert tuple(zoom_only) == ZOOM_TOOLS
    assert zoom_only["image_zoom_in_tool"].name == "zoom_in"
    with pytest.raises(ToolError):
        zoom_only["window"]


# ------------------------------------------------------------------ fuzzing
HU = np.linspace(-1000, 1500, 96 * 64).reshape(64, 96).astype(np.int16)
IMAGE = MedImage.from_array(HU, default_window=Window(level=40, width=400), modality="CT")
V0 = full_view(IMAGE, (448, 299))
V1 = ViewSpec(bbox_px=(10, 5, 60, 45), rot90=3, flip_h=True, out_size=(160, 200), parent=0)
CTX = ToolContext(views=(V0, V1), images=(ImageInfo.of(IMAGE),))

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
coord = st.one_of(st.integers(-100, 600), st.floats(-100, 600))
near_box = st.one_of(
    st.tuples(coord, coord, coord, coord).map(
        lambda c: [min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])]
    ),
    st.lists(coord, min_size=4, max_size=4),
)
near_values = {
    "bbox_2d": near_box,
    "image_index": st.integers(0, 2),
    "label": st.text(max_size=30),
    "level": st.floats(-2000, 2000),
    "width": st.floats(-10, 3000),
    "preset": st.sampled_from(["lung", "bone", "Lung", "lungs", ""]),
    "degrees": st.sampled_from([90, 180, 270, -90, 45, 0]),
    "axis": st.sampled_from(["horizontal", "vertical", "h"]),
}


@st.composite
def call(draw: st.DrawFn) -> tuple[str, object]:
    """A call of a known tool: its own arguments (mostly plausible values), sometimes extras."""
    name = draw(st.sampled_from([*ALL_TOOLS, *ALIASES]))
    args: dict[str, object] = {}
    for k in TOOLS[name].params.model_fields:
        if draw(st.integers(0, 3)) > 0:  # each argument given 3 times in 4
            plausible = draw(st.integers(0, 4)) > 0
            args[k] = draw(near_values[k] if plausible else json_value)
    if draw(st.integers(0, 9)) == 0:
        args.update(draw(st.dictionaries(st.text(max_size=8), json_value, max_size=2)))
    if draw(st.integers(0, 19)) == 0:
        return name, draw(json_value)  # not even an object
    return name, args


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call())
def test_no_arguments_crash_a_tool(tool_call: tuple[str, object]) -> None:
    name, args = tool_call
    try:
        res = TOOLS[name](CTX, args)  # type: ignore[arg-type]
    except ToolError as e:
        assert str(e)  # a message for the model
        return
    assert isinstance(res, ToolResult) and res.ok and res.view is not None
    assert res.penalty >= 0 and "this is image 2." in res.text
    out = render(IMAGE, res.view)  # every view a tool makes can be rendered
    assert out.shape == (res.view.out_size[1], res.view.out_size[0], 3)
