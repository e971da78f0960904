from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.core.view import ViewSpec
from medgym.envs.profiles import PROFILES, get_profile, smart_resize
from medgym.errors import ConfigError


@pytest.mark.parametrize("name", list(PROFILES))
@given(w=st.integers(16, 4000), h=st.integers(16, 4000), up=st.booleans())
def test_view_size_is_a_fixed_point_of_the_processor_rule(
    name: str, w: int, h: int, up: bool
) -> None:
    p = PROFILES[name]
    if max(w, h) / min(w, h) > 150:
        return
    vw, vh = p.view_size(w, h, upscale=up)
    assert vw % p.factor == 0 and vh % p.factor == 0
    assert vw * vh <= p.max_pixels
    # The model's processor leaves an emitted view unchanged, so boxes mean what the model saw.
    assert smart_resize(
        vh, vw, factor=p.factor, min_pixels=p.min_pixels, max_pixels=p.max_pixels
    ) == (vh, vw)


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("rot", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_model_box_in_each_convention_lands_on_same_original_pixels(
    name: str, rot: int, flip: bool
) -> None:
    p = PROFILES[name]
    view = ViewSpec(bbox_px=(100, 200, 1100, 900), rot90=rot, flip_h=flip, out_size=(448, 336))
    target = (400.0, 300.0, 600.0, 500.0)  # original pixels
    box_view = view.original_to_view(target)
    model_box = p.from_view_px(box_view, view.out_size)
    back = view.view_to_original(p.to_view_px(model_box, view.out_size))
    tol = 3.0 if p.box_format != "pixel" else 2.5  # rounding of what the model writes
    assert back == pytest.approx(target, abs=tol)


def test_qwen3_uses_0_1000_and_32() -> None:
    p = get_profile("qwen3-vl")
    assert p.box_format == "norm1000" and p.factor == 32
    assert p.to_view_px([0, 0, 1000, 500], (640, 320)) == (0, 0, 640, 160)


def test_unknown_profile_suggests() -> None:
    with pytest.raises(ConfigError, match=r"did you mean `qwen2\.5-vl`"):
        get_profile("qwen25-vl")


def test_overrides_and_validation() -> None:
    assert get_profile("qwen2.5-vl", max_pixels=224 * 224).max_pixels == 224 * 224
    with pytest.raises(ConfigError):
        get_profile("qwen2.5-vl", min_pixels=10**9)
    with pytest.raises(ConfigError, match="aspect"):
        smart_resize(10, 5000, factor=28, min_pixels=1, max_pixels=10**6)


def test_tools_block_only_where_expected() -> None:
    schema = [{"type": "function", "function": {"name": "zoom_in", "parameters": {}}}]
    assert "<tools>" in PROFILES["qwen2.5-vl"].tools_block(schema)
    assert PROFILES["qwen2.5-vl"].tools_block([]) == ""
