"""The learning benchmark on volumes (``--task synthetic3d``): splits, warm start, a short run."""

from __future__ import annotations

import json

import pytest

from medgym.errors import ConfigError
from medgym.learning.bench import HIDDEN_META_KEYS, METRICS, LearningConfig, split_samples


def test_volume_splits_hide_the_nodule_from_the_trainer() -> None:
    splits = split_samples(
        LearningConfig(task="synthetic3d", rl_samples=12, eval_samples=12, probe_samples=4)
    )
    assert all(s.images[0].uri.startswith("synthetic3d://") for s in splits["eval"])
    assert {s.meta["family"] for s in splits["eval"]} == {"presence", "location", "side"}
    labelled = [s for s in splits["rl_labelled"] if "nodule_slices" in s.meta]
    assert labelled  # the keys exist before stripping: the check below can fail
    for s in splits["rl"]:
        assert s.answer is None and s.evidence == ()
        assert not set(HIDDEN_META_KEYS) & set(s.meta)
    uris = lambda xs: {s.images[0].uri for s in xs}  # noqa: E731
    assert not uris(splits["rl"]) & uris(splits["eval"])


def test_the_warm_start_must_be_on_the_benchmarks_task() -> None:
    pytest.importorskip("torch")
    from medgym.agents.tiny_vlm import WarmStartConfig

    with pytest.raises(ConfigError, match="the warm start is on task `synthetic`"):
        LearningConfig(task="synthetic3d", warm=WarmStartConfig())
    with pytest.raises(ConfigError, match="unknown tiny task `volumes`"):
        LearningConfig(task="volumes")
    assert WarmStartConfig(task="synthetic3d").key() != WarmStartConfig().key()


def test_teacher_demonstrations_of_a_volume_look_with_an_overview() -> None:
    import asyncio

    from medgym.agents.policy import run_episode
    from medgym.agents.scripted import TeacherPolicy
    from medgym.agents.tiny_vlm import TINY_PROFILE, get_tiny_task
    from medgym.envs.config import SessionConfig
    from medgym.envs.session import EpisodeSession

    task = get_tiny_task("synthetic3d")
    for sample in task.samples("train", 3):
        session = EpisodeSession(
            sample, profile=TINY_PROFILE, config=SessionConfig.from_dict(task.session)
        )
        asyncio.run(run_episode(TeacherPolicy(), session))
        (call,) = [c for t in session.turns for c in t.tool_calls]
        assert call.name == "overview" and call.ok
        assert session.views[-1].montage is not None and len(session.views[-1].montage) == 16
        assert session.turns[-1].answer == sample.answer


@pytest.fixture(scope="module")
def volume_run(small_model, tmp_path_factory):
    """Warm start on synthetic3d (300 steps of the small model, ~25 s) and 2 GRPO steps."""
    from medgym.agents.tiny_vlm import WarmStartConfig
    from medgym.learning.bench import run_learning
    from medgym.learning.grpo import GRPOConfig

    warm = WarmStartConfig(
        task="synthetic3d", num_samples=32, max_steps=300, batch_size=4, lr=3e-3,
        model=small_model,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("learning3d")
    config = LearningConfig(
        task="synthetic3d", variants=("label-free",), warm=warm, rl_samples=4, eval_samples=6,
        probe_samples=2, probe_every=1, eval_n=1, resamples=50,
        grpo=GRPOConfig(steps=2, prompts_per_step=2, num_generations=2),
    )  # fmt: skip
    results = run_learning(config, out, cache=tmp_path_factory.mktemp("cache3d"))
    return out, results


def test_the_benchmark_runs_on_volumes_end_to_end(volume_run) -> None:
    out, results = volume_run
    assert list(results) == ["warm_start", "label-free"]
    for name, r in results.items():
        for m in METRICS:
            e = r[m]
            assert e is None or 0.0 <= e["low"] <= e["value"] <= e["high"] <= 1.0, (name, m)
    evaluated = json.loads((out / "eval" / "warm_start" / "results.json").read_text())
    assert evaluated["config"]["data"] == "synthetic3d:test"
    # the warm start learned to look at the volume the way its teacher did
    assert results["warm_start"]["tool_calls_per_episode"]["value"] > 0
    calls = [
        c["name"]
        for line in (out / "eval" / "warm_start" / "trajectories" / "main.jsonl").open()
        for t in json.loads(line)["trajectories"]
        for turn in t["turns"]
        for c in turn["tool_calls"]
    ]
    assert calls and set(calls) <= {"overview", "scroll"}, calls
    assert json.loads((out / "learning_meta.json").read_text())["config"]["task"] == "synthetic3d"
