from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import medgym
from medgym.agents import OraclePolicy
from medgym.errors import ConfigError

IDS = list(medgym.ENV_IDS)
SMALL = {"dataset": {"name": "synthetic", "num_samples": 6}}


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_without_warnings(env_id: str) -> None:
    env = gym.make(env_id, **SMALL)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", IDS)
def test_scripted_rollout(env_id: str) -> None:
    env = gym.make(env_id, **SMALL)
    obs, info = env.reset(seed=3)
    assert obs["text"].count("<image>") == len(obs["images"]) == 1
    assert env.observation_space.contains(obs)
    session = env.unwrapped.session
    total = 0.0
    policy = OraclePolicy()
    import asyncio

    done = False
    while not done:
        gen = asyncio.run(policy.generate(session))
        obs, reward, terminated, truncated, info = env.step(gen.text)
        assert env.observation_space.contains(obs)
        total += reward
        done = terminated or truncated
    assert terminated and info["reward_parts"]["accuracy"] == 1.0
    assert total == pytest.approx(info["reward_parts"]["total"])
    if env_id != "MedVQA-Direct-v0":
        assert session.metrics["tool_calls"] >= 1
        frame = env.unwrapped.render() if env.unwrapped.render_mode else None
        assert frame is None


def test_same_seed_same_episode_and_crops() -> None:
    def run(seed: int) -> tuple[str, list[np.ndarray], list[dict]]:
        env = gym.make("MedVQA-Zoom-v0", **SMALL)
        obs, _ = env.reset(seed=seed)
        w = obs["images"][0].shape[1]
        act = {"name": "zoom_in", "arguments": {"bbox_2d": [10, 10, w // 3, w // 3]}}
        obs2, _, _, _, info = env.step(f"<tool_call>{json.dumps(act)}</tool_call>")
        return obs["text"], [*obs["images"], *obs2["images"]], info["views"]

    a, b, c = run(11), run(11), run(12)
    assert a[0] == b[0] and a[2] == b[2]
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    assert a[0] != c[0] or not np.array_equal(a[1][0], c[1][0])


def test_options_pick_sample_and_kwargs_are_json() -> None:
    kwargs = {"dataset": {"name": "synthetic", "num_samples": 4}, "max_turns": 3,
              "penalties": {"format_error": 0.3}, "profile": "qwen3-vl"}  # fmt: skip
    json.dumps(kwargs)
    env = gym.make("MedVQA-Tools-v0", **kwargs)
    target = env.unwrapped.samples[2].id
    _, info = env.reset(options={"sample_id": target})
    assert info["sample_id"] == target
    _, r, _, _, info = env.step("nothing")
    assert r == pytest.approx(-0.3) and "no tool call or answer" in info["errors"][0]
    with pytest.raises(ConfigError, match="no sample"):
        env.reset(options={"sample_id": "missing"})


def test_render_draws_zoom_boxes() -> None:
    env = gym.make("MedVQA-Zoom-v0", render_mode="rgb_array", **SMALL)
    obs, _ = env.reset(seed=0)
    before = env.render()
    assert np.array_equal(before, obs["images"][0])
    env.step(
        '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [50, 50, 150, 150]}}</tool_call>'
    )
    after = env.render()
    assert after.shape == before.shape and not np.array_equal(after, before)
    assert (after[50:150, 50] == [255, 0, 0]).all(axis=-1).mean() > 0.9
    assert env.render() is not after  # fresh array every call


def test_bad_constructor_args() -> None:
    with pytest.raises(ConfigError, match="did you mean"):
        gym.make("MedVQA-Zoom-v0", tools=["zoom_inn"], **SMALL)
    with pytest.raises(ConfigError, match="max_turns"):
        gym.make("MedVQA-Zoom-v0", max_turns=0, **SMALL)
    with pytest.raises(ConfigError, match="unknown dataset"):
        gym.make("MedVQA-Zoom-v0", dataset="slakee")


def test_step_before_reset() -> None:
    env = medgym.MedVQAEnv(**SMALL)
    with pytest.raises(ConfigError, match="reset"):
        env.step("<answer>yes</answer>")


@pytest.mark.parametrize("tool", ["zoom_in", "crop"])
@pytest.mark.parametrize("env_id", ["MedVQA-Zoom-v0", "MedVQA-Tools-v0"])
def test_box_whose_area_underflows_is_an_error_observation(env_id: str, tool: str) -> None:
    """[0, 0, 1e-300, 1e-300] has ordered corners and an area of 0.0: it raised
    ZeroDivisionError out of env.step (issue 18, D2)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    turn = '<tool_call>{"name": "%s", "arguments": {"bbox_2d": [0, 0, 1e-300, 1e-300]}}</tool_call>'
    obs, reward, terminated, _, _ = env.step(turn % tool)
    assert "has no area" in obs["text"]
    assert reward < 0 and not terminated


@pytest.mark.parametrize(
    "turn",
    [
        '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 10, 10]}}</tool_call>'
        * 1000,
        "<tool_call></tool_call>" * 10000,
        "<tool_call>" * 10000,
        "<answer>" * 10000,
    ],
    ids=["1000-calls", "10000-empty-calls", "10000-open-tags", "10000-open-answers"],
)
def test_hostile_turns_stay_inside_the_observation_space(turn: str) -> None:
    """Each surplus call or unclosed tag used to add its own error line (issue 18, D9: 110,555
    characters against a max_length of 65,536)."""
    env = gym.make("MedVQA-Zoom-v0")
    env.reset(seed=0)
    obs, reward, terminated, _, _ = env.step(turn)
    assert len(obs["text"]) < 2_000
    assert env.observation_space.contains(obs)
    assert -2.0 < reward < 0 and not terminated


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_pixels": 10**12}, "max_pixels must be <="),
        ({"format_weight": float("inf")}, "format_weight must be a number in"),
        ({"format_weight": float("nan")}, "format_weight must be a number in"),
        ({"penalties": {"format_error": 1e308}}, "penalty `format_error` must be a number in"),
    ],
    ids=["max-pixels", "inf-weight", "nan-weight", "huge-penalty"],
)
def test_unbounded_settings_are_refused(kwargs: dict, match: str) -> None:
    """Issue 18, D12: these were accepted and made a zoom ask for terabytes or the reward inf."""
    with pytest.raises(ConfigError, match=match):
        gym.make("MedVQA-Zoom-v0", **kwargs)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sample_id": ["x"]}, "sample_id must be a string"),
        ({"sample": "x"}, r"unknown reset option\(s\) \['sample'\].*did you mean `sample_id`"),
    ],
)
def test_bad_reset_options_are_clear_errors(options: dict, match: str) -> None:
    env = gym.make("MedVQA-Zoom-v0")
    with pytest.raises(ConfigError, match=match):
        env.reset(seed=0, options=options)
