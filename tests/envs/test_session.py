from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.core.images import MedImage
from medgym.core.sample import Sample
from medgym.envs.config import Penalties, SessionConfig
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError


def call(name: str, **args: object) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def make(sample: Sample, image: MedImage, **cfg: object) -> EpisodeSession:
    return EpisodeSession(sample, images=[image], config=SessionConfig(**cfg))  # type: ignore[arg-type]


def test_first_view_uses_profile_size(sample: Sample, image: MedImage) -> None:
    s = make(sample, image)
    assert s.views[0].bbox_px == (0, 0, 1024, 768)
    w, h = s.views[0].out_size
    assert w % 28 == 0 and h % 28 == 0 and w * h <= 448 * 448
    assert s.pixels(0).shape == (h, w, 3)
    assert "<tools>" in s.system_prompt and "zoom_in" in s.system_prompt


def test_zoom_then_answer(sample: Sample, image: MedImage) -> None:
    s = make(sample, image)
    v = s.views[0]
    box = [round(c) for c in v.original_to_view((590, 290, 674, 374))]
    r = s.apply_turn(call("zoom_in", bbox_2d=box))
    assert r.new_views == [1] and not r.terminated and r.reward == 0.0
    assert r.observation.count("<image>") == 1
    new = s.views[1]
    assert new.bbox_px[0] <= 600 and new.bbox_px[2] >= 664  # the square is inside the crop
    assert s.pixels(1).mean() > s.pixels(0).mean()  # the bright square fills more of the crop
    r = s.apply_turn("<answer>Yes</answer>")
    assert r.terminated and not r.truncated
    assert r.info["reward_parts"]["accuracy"] == 1.0
    assert r.info["reward_parts"]["format"] == 1.0
    assert r.reward == pytest.approx(1.1)
    traj = s.trajectory()
    assert traj.answer == "Yes" and len(traj.turns) == 2 and traj.executed_regions


def test_option_letter_answer(sample: Sample, image: MedImage) -> None:
    s = make(sample, image)
    r = s.apply_turn("<answer>B</answer>")
    assert s.answer == "no" and r.info["reward_parts"]["accuracy"] == 0.0


@pytest.mark.parametrize(
    ("turn", "error", "penalty"),
    [
        ("I am not sure.", "no tool call or answer", "format_error"),
        ("<tool_call>{oops</tool_call>", "not valid JSON", "format_error"),
        (call("zoom", bbox_2d=[0, 0, 10, 10]), "did you mean `zoom_in`", "tool_error"),
        (call("zoom_in", bbox_2d=[10, 10, 5, 40]), "x2 <= x1", "tool_error"),
        (call("zoom_in", bbox_2d=[5000, 5000, 6000, 6000]), "outside", "tool_error"),
        (call("zoom_in", bbox_2d=[0, 0, 10, 10], image_index=7), "image_index 7", "tool_error"),
        ("<answer>   </answer>", "answer is empty", "format_error"),
    ],
    ids=["neither", "bad-json", "unknown-tool", "x2<x1", "outside", "bad-index", "empty-answer"],
)
def test_bad_actions_become_observations(
    sample: Sample, image: MedImage, turn: str, error: str, penalty: str
) -> None:
    s = make(sample, image, penalties=Penalties(format_error=0.2, tool_error=0.07))
    r = s.apply_turn(turn)
    assert not r.terminated and not r.truncated
    assert error in r.observation
    assert r.reward == pytest.approx(-{"format_error": 0.2, "tool_error": 0.07}[penalty])
    assert s.format_ok is False


def test_both_answer_and_call_precedence(sample: Sample, image: MedImage) -> None:
    turn = call("zoom_in", bbox_2d=[0, 0, 100, 100]) + "<answer>yes</answer>"
    s = make(sample, image, precedence="answer")
    assert s.apply_turn(turn).terminated and len(s.views) == 1
    s = make(sample, image, precedence="tools")
    r = s.apply_turn(turn)
    assert not r.terminated and len(s.views) == 2 and "answer ignored" in r.observation


def test_turn_budget_truncates(sample: Sample, image: MedImage) -> None:
    s = make(sample, image, max_turns=2, penalties=Penalties(no_answer=0.5))
    r = s.apply_turn(call("zoom_in", bbox_2d=[0, 0, 100, 100]))
    assert "last turn" in r.observation
    r = s.apply_turn(call("zoom_in", bbox_2d=[0, 0, 100, 100]))
    assert r.truncated and not r.terminated
    assert r.info["reward_parts"]["accuracy"] == 0.0 and r.reward == pytest.approx(-0.5)
    with pytest.raises(ConfigError, match="episode is over"):
        s.apply_turn("<answer>yes</answer>")


def test_image_budget(sample: Sample, image: MedImage) -> None:
    s = make(sample, image, max_images=1, max_calls_per_turn=3)
    z = call("zoom_in", bbox_2d=[0, 0, 100, 100])
    r = s.apply_turn(z + z)
    assert r.new_views == [1] and "image budget spent" in r.observation
    assert s.metrics["budget_errors"] == 1


def test_calls_per_turn_limit(sample: Sample, image: MedImage) -> None:
    s = make(sample, image, max_calls_per_turn=1)
    z = call("zoom_in", bbox_2d=[0, 0, 100, 100])
    r = s.apply_turn(z + z)
    assert r.new_views == [1] and "too many tool calls" in r.observation


def test_fork_is_independent(sample: Sample, image: MedImage) -> None:
    s = make(sample, image)
    s.apply_turn(call("zoom_in", bbox_2d=[0, 0, 200, 200]))
    s.pixels(1)  # rendered once before the fork
    f = s.fork()
    assert f.parent_id == s.trajectory_id and f.branch_turn == 1
    f.apply_turn(call("zoom_in", bbox_2d=[200, 200, 400, 400]))
    s.apply_turn("<answer>no</answer>")
    assert len(s.views) == 2 and len(f.views) == 3
    assert s.done and not f.done
    assert len(s.conversation()) == 5 and len(f.conversation()) == 6
    assert s.views[1] == f.views[1] and s.metrics["turns"] == 2 and f.metrics["turns"] == 2
    assert np.shares_memory(s.pixels(1), f.pixels(1))  # views are shared, not re-rendered


def test_conversation_formats(sample: Sample, image: MedImage) -> None:
    s = make(sample, image)
    s.apply_turn(call("zoom_in", bbox_2d=[0, 0, 200, 200]))
    spec = s.conversation("spec")
    assert [m["role"] for m in spec] == ["system", "user", "assistant", "user"]
    assert {"type": "image", "view": 1} in spec[-1]["content"]
    hf = s.conversation("hf")
    imgs = [p["image"] for m in hf for p in m["content"] if p["type"] == "image"]
    assert [im.size for im in imgs] == [tuple(s.views[0].out_size), tuple(s.views[1].out_size)]
    oa = s.conversation("openai")
    urls = [p["image_url"]["url"] for p in oa[-1]["content"] if p["type"] == "image_url"]
    assert len(urls) == 1 and urls[0].startswith("data:image/png;base64,")
    assert isinstance(oa[2]["content"], str)
    text = s.conversation("text")
    assert text[1]["content"].startswith("<image>") and "<tool_response>" in text[-1]["content"]
    with pytest.raises(ConfigError):
        s.conversation("xml")


def test_inject_does_not_use_budget(sample: Sample, image: MedImage) -> None:
    s = make(sample, image, max_turns=1)
    s.inject("Look again at the upper right.")
    assert s.turns_left == 1 and s.turns[-1].injected
    assert s.conversation("text")[-1]["content"] == "Look again at the upper right."


def test_qwen3_profile_boxes_are_0_1000(sample: Sample, image: MedImage) -> None:
    s = EpisodeSession(sample, images=[image], profile="qwen3-vl")
    r = s.apply_turn(call("zoom_in", bbox_2d=[500, 0, 1000, 500]))
    assert r.new_views == [1]
    x1, y1, x2, y2 = s.views[1].bbox_px
    assert (x1, y1) == pytest.approx((512, 0), abs=2) and (x2, y2) == pytest.approx(
        (1024, 384), abs=2
    )
    assert "<tools>" not in s.system_prompt  # Qwen3-VL's template renders tools itself


@given(
    st.lists(
        st.one_of(
            st.text(max_size=300),
            st.sampled_from(
                [
                    call("zoom_in", bbox_2d=[0, 0, 50, 50]),
                    call("zoom_in", bbox_2d=["a", None, 1e309, -1]),
                    call("crop", bbox_2d=[[1, 2], 3]),
                    call("reground", image_index=99),
                    call("window", preset="lung"),
                    '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4e400]}}',
                    "<answer>",
                    "<answer>yes</answer>",
                ]
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_model_text_never_raises(turns: list[str]) -> None:
    from medgym.core.images import ImageRef

    image = MedImage.from_array(np.arange(256 * 256, dtype=np.uint16).reshape(256, 256))
    sample = Sample(id="p", images=(ImageRef(uri="memory://p"),), question="q?", answer="yes")
    s = EpisodeSession(sample, images=[image], config=SessionConfig(max_turns=4))
    for turn in turns:
        if s.done:
            break
        r = s.apply_turn(turn)
        assert np.isfinite(r.reward)
        assert r.observation.count("<image>") == len(r.new_views)
