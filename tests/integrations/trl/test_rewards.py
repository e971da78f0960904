"""Group rewards over sessions: whole-group check, label-free scoring, logged metrics."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("trl")

from medgym.data import load
from medgym.errors import ConfigError
from medgym.integrations.trl import MetricsSink, SessionGroupReward, make_environment_factory


def _envs(samples, per_sample):
    factory = make_environment_factory(samples)
    envs = []
    for s in samples:
        for _ in range(per_sample):
            env = factory()
            env.reset(sample_id=s.id)
            envs.append(env)
    return envs


def test_label_free_reward_scores_whole_groups_and_logs(tmp_path) -> None:
    samples = load("synthetic", num_samples=2)
    envs = _envs(samples, 3)
    answers = ["mass", "mass", "nodule"] * 2
    completions = [[{"role": "assistant", "content": f"<answer>{a}</answer>"}] for a in answers]
    logged: dict[str, float] = {}
    sink = MetricsSink(tmp_path / "m.jsonl")
    fn = SessionGroupReward(
        num_generations=3, reward="label_free", reward_options={"embedder": "hashing"}, sink=sink
    )
    rewards = fn(completions, environments=envs, log_metric=logged.__setitem__)
    assert len(rewards) == 6 and all(math.isfinite(r) for r in rewards)
    assert rewards[0] == rewards[1] > rewards[2]  # the majority answer is the pseudo label
    assert logged["medgym/answer_rate"] == 1.0
    assert 0.0 < logged["medgym/pseudo_label_confidence"] <= 1.0
    assert "medgym/part/accuracy" in logged and "medgym/tool_call_rate" in logged
    assert sink.read()[0]["rewards"] == rewards


def test_split_group_is_refused() -> None:
    samples = load("synthetic", num_samples=2)
    envs = _envs(samples, 2)
    completions = [[{"role": "assistant", "content": "<answer>a</answer>"}]] * 4
    fn = SessionGroupReward(num_generations=4, reward="majority")
    with pytest.raises(ConfigError, match="share one sample"):
        fn(completions, environments=envs)
    with pytest.raises(ConfigError, match="whole groups"):
        SessionGroupReward(num_generations=3, reward="majority")(completions, environments=envs)


def test_environments_are_required() -> None:
    with pytest.raises(ConfigError, match="environment_factory"):
        SessionGroupReward(num_generations=2, reward="majority")(["x", "y"])
