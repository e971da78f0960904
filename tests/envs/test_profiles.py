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
    # Past max_pixels / factor**2 the narrow side is one patch already: no size meets the budget
    # (Qwen's rule then keeps the one-patch side, as the processor does; tiny-vlm: 36).
    if max(w, h) / min(w, h) > min(150, p.max_pixels / p.factor**2 - 1):
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


# ---------------------------------------------------------------- checkpoint profiles


def test_checkpoint_profile_round_trips(tmp_path) -> None:
    from medgym.envs.profiles import load_checkpoint_profile, save_checkpoint_profile

    assert load_checkpoint_profile(tmp_path) is None
    save_checkpoint_profile(tmp_path, "tiny-vlm")
    got = load_checkpoint_profile(tmp_path)
    assert got == get_profile("tiny-vlm")
    assert got.stop == ("</tool_call>", "</answer>")  # a tuple again, so equality holds


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"name": "x", "boxes": "pixel"}', "unknown profile fields"),
        ('{"name": "x", "box_format": "inches"}', "box_format"),
    ],
    ids=["bad-json", "not-an-object", "unknown-field", "bad-value"],
)
def test_bad_checkpoint_profile_is_a_clear_error(tmp_path, text: str, match: str) -> None:
    from medgym.envs.profiles import PROFILE_FILE, load_checkpoint_profile

    (tmp_path / PROFILE_FILE).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_checkpoint_profile(tmp_path)


def test_tiny_profile_is_registered_and_speaks_percent_boxes() -> None:
    tiny = get_profile("tiny-vlm")
    assert tiny.box_format == "norm1000" and tiny.max_pixels == 168 * 168
    assert not tiny.tools_in_system_prompt
    # boxes are thousandths of the view: the middle third of a 168 px view is 333..667
    assert tiny.from_view_px((56.0, 0.0, 112.0, 168.0), (168, 168)) == [333, 0, 667, 1000]
