"""The TRL environment over EpisodeSession: tools, crops, budgets, penalties, final answers."""

from __future__ import annotations

import numpy as np
import pytest

from medgym.tools import ALL_TOOLS, TOOLS, VOLUME_TOOLS

pytest.importorskip("trl")

from medgym.data import load
from medgym.envs.config import SessionConfig
from medgym.errors import ConfigError
from medgym.integrations.trl import finish_episode, make_environment_factory


@pytest.fixture(scope="module")
def samples():
    return load("synthetic", num_samples=3)


def _env(samples, **cfg):
    factory = make_environment_factory(samples, config=SessionConfig(**cfg))
    env = factory()
    env.reset(prompt=[], sample_id=samples[0].id)
    return env


def test_zoom_returns_the_crop_as_an_image_part(samples) -> None:
    env = _env(samples)
    w, h = env.session.views[0].out_size
    parts = env.zoom_in(bbox_2d=[0, 0, w // 2, h // 2])
    images = [p["image"] for p in parts if p["type"] == "image"]
    assert len(images) == 1
    np.testing.assert_array_equal(np.asarray(images[0]), env.session.pixels(1))
    assert env.session.metrics["tool_ok"] == 1
    assert "<tool_response>" in "".join(p.get("text", "") for p in parts)


def test_bad_box_is_a_penalised_error_observation(samples) -> None:
    env = _env(samples)
    parts = env.zoom_in(bbox_2d=[50, 50, 10, 10])
    assert all(p["type"] == "text" for p in parts)
    assert "x2 <= x1" in parts[0]["text"]
    assert env.session.penalty_total == pytest.approx(env.session.config.penalties.tool_error)


def test_image_budget_is_enforced_as_in_the_gym_env(samples) -> None:
    env = _env(samples, max_images=1, max_turns=5)
    env.zoom_in(bbox_2d=[0, 0, 20, 20])
    parts = env.crop(bbox_2d=[0, 0, 20, 20])
    assert "image budget spent" in parts[0]["text"]
    assert env.session.metrics["budget_errors"] == 1


def test_turn_budget_ends_the_episode(samples) -> None:
    env = _env(samples, max_turns=1)
    parts = env.zoom_in(bbox_2d=[0, 0, 20, 20])
    assert env.session.truncated
    assert "over" in parts[0]["text"]
    assert "over" in env.reground(image_index=0)[0]["text"]


@pytest.mark.parametrize(
    ("completion", "terminated"),
    [
        pytest.param([{"role": "assistant", "content": "<answer>yes</answer>"}], True, id="answer"),
        pytest.param("<answer>no</answer>", True, id="plain-string"),
        pytest.param(
            [{"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]}],
            False,
            id="unplayed-tool-call",
        ),
        pytest.param([{"role": "tool", "content": "x"}], False, id="ends-on-tool"),
    ],
)
def test_finish_episode_applies_the_final_answer(samples, completion, terminated) -> None:
    env = _env(samples)
    session = finish_episode(env, completion)
    assert session.terminated is terminated
    assert finish_episode(env, completion) is session  # idempotent


def test_reset_needs_a_known_sample(samples) -> None:
    env = make_environment_factory(samples)()
    with pytest.raises(ConfigError, match="sample_id"):
        env.reset(sample_id="nope")
    with pytest.raises(ConfigError, match="reset"):
        env.zoom_in(bbox_2d=[0, 0, 1, 1])


def test_unknown_tool_is_refused_with_the_near_name(samples) -> None:
    with pytest.raises(ConfigError, match="did you mean `zoom_in`"):
        make_environment_factory(samples, config=SessionConfig(tools=("zoom_inn",)))


@pytest.mark.parametrize("name", VOLUME_TOOLS)
def test_trl_tool_schema_is_the_registry_contract(name: str) -> None:
    """The schema TRL derives from each generated method says what the registry says."""
    from transformers.utils import get_json_schema

    from medgym.integrations.trl import tool_env_class

    got = get_json_schema(getattr(tool_env_class(VOLUME_TOOLS), name))["function"]
    want = TOOLS[name].to_openai_schema()["function"]
    assert got["name"] == want["name"] and got["description"] == want["description"]
    gp, wp = got["parameters"], want["parameters"]
    assert list(gp["properties"]) == list(wp["properties"])
    assert sorted(gp.get("required", [])) == sorted(wp["required"])
    for key, prop in wp["properties"].items():
        assert gp["properties"][key]["description"] == prop["description"]
        assert gp["properties"][key]["type"] == prop["type"]
        assert gp["properties"][key].get("enum") == prop.get("enum")


def test_every_tool_runs_through_the_session(samples) -> None:
    factory = make_environment_factory(samples, config=SessionConfig(tools=ALL_TOOLS, max_turns=8))
    env = factory()
    env.reset(sample_id=samples[0].id)
    assert "image" in [p["type"] for p in env.rotate(degrees=90)]
    assert "image" in [p["type"] for p in env.flip(axis="horizontal")]
    assert "image" in [p["type"] for p in env.window(level=40.0, width=400.0)]
    bad = env.flip(axis="diagonal")  # refused by the tool: an error reply, not an exception
    assert "Error: invalid arguments for `flip`" in bad[0]["text"]
    assert env.session.metrics["tool_errors"] == 1
    calls = [c.name for t in env.session.turns for c in t.tool_calls]
    assert calls == ["rotate", "flip", "window", "flip"]
