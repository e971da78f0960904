"""The learning benchmark: splits, label removal, the whole run at a tiny budget, the demo path."""

from __future__ import annotations

import json
import re

import pytest

from medgym.errors import ConfigError
from medgym.learning.bench import (
    HIDDEN_META_KEYS,
    METRICS,
    VARIANTS,
    LearningConfig,
    split_samples,
    strip_labels,
)


def test_unknown_variant_names_the_near_one() -> None:
    with pytest.raises(ConfigError, match="did you mean `label-free`"):
        LearningConfig(variants=("label-fre",))


def test_probe_must_fit_in_split_c() -> None:
    with pytest.raises(ConfigError, match="prefix of split C"):
        LearningConfig(eval_samples=4, probe_samples=8)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan")])
def test_eval_temperature_must_be_positive(tau: float) -> None:
    with pytest.raises(ConfigError, match="eval_temperature must be > 0"):
        LearningConfig(eval_temperature=tau)


def test_evaluation_samples_at_the_temperature_it_is_given(format_warm_dir, tmp_path) -> None:
    """Near-greedy (temperature 1e-3), two sampling seeds give the same replies; at 1.0 the
    replies differ between the seeds."""
    from medgym.agents.tiny_vlm import TINY_TASK
    from medgym.data import load
    from medgym.learning.evaluate import evaluate_checkpoint

    samples = load("synthetic", split="test", num_samples=4, **TINY_TASK)

    def replies(tau: float, seed: int) -> list[str]:
        out = tmp_path / f"{tau}-{seed}"
        evaluate_checkpoint(format_warm_dir, samples, out, n=2, resamples=10, seed=seed,
                            temperature=tau)  # fmt: skip
        rows = [json.loads(x) for x in (out / "trajectories" / "main.jsonl").open()]
        return [tu["action"] for r in rows for t in r["trajectories"] for tu in t["turns"]]

    assert replies(1e-3, 0) == replies(1e-3, 1)
    assert replies(1.0, 0) != replies(1.0, 1)


def test_splits_are_disjoint_and_rl_split_has_no_labels() -> None:
    splits = split_samples(LearningConfig(rl_samples=24, eval_samples=24, probe_samples=8))
    rl, ev = splits["rl"], splits["eval"]
    seeds = lambda xs: {s.meta["image_seed"] for s in xs}  # noqa: E731
    assert not seeds(rl) & seeds(ev)
    assert [s.id for s in rl] == [s.id for s in splits["rl_labelled"]]
    assert splits["probe"] == ev[:8]
    for s in rl:
        assert s.answer is None and s.evidence == () and not s.labelled
        assert not set(HIDDEN_META_KEYS) & set(s.meta)
        assert "query" in s.meta  # the answer-free part of the question stays
    assert all(s.labelled for s in ev)


def test_label_free_rewards_do_not_depend_on_the_label() -> None:
    """The same rollouts score the same whether or not the sample still carries its label."""
    from medgym.agents import GroupRunner, RandomZoomPolicy
    from medgym.core.trajectory import Group
    from medgym.data import load
    from medgym.rewards.group import make_group_reward

    samples = load("synthetic", split="validate", num_samples=6, image_size=512)
    for name in ("label-free", "label-free-no-cca", "no-tools"):
        v = VARIANTS[name]
        reward = make_group_reward(v.reward, embedder="hashing", **v.options)
        for g, bare in zip(
            GroupRunner(n=4, progress=False).run(samples, RandomZoomPolicy()),
            strip_labels(samples),
            strict=True,
        ):
            stripped = Group(id=g.id, sample=bare, trajectories=g.trajectories)
            assert reward.reward(g).rewards == reward.reward(stripped).rewards, name
    # the supervised reference does read it: the control that the check can fail
    sup = make_group_reward("medvr", embedder="hashing", accuracy="label")
    g = GroupRunner(n=4, progress=False).run(samples[:1], RandomZoomPolicy())[0]
    wrong = g.sample.model_copy(update={"answer": "definitely not an option"})
    assert sup.reward(g).rewards != sup.reward(Group(id=g.id, sample=wrong,
                                                     trajectories=g.trajectories)).rewards or (
        not any(t.answer == g.sample.answer for t in g.trajectories)
    )  # fmt: skip


@pytest.fixture(scope="module")
def learning_run(format_warm_dir, format_warm_config, tmp_path_factory):
    """The benchmark end to end at a tiny budget: warm start (cached), 2 variants, evaluation."""
    import shutil

    from medgym.learning.bench import run_learning
    from medgym.learning.grpo import GRPOConfig

    warm = format_warm_config
    cache = tmp_path_factory.mktemp("learning-cache")
    shutil.copytree(format_warm_dir, cache / format_warm_dir.name)  # the cached warm start
    out = tmp_path_factory.mktemp("learning")
    config = LearningConfig(
        variants=("label-free", "no-tools"), warm=warm, rl_samples=4, eval_samples=6,
        probe_samples=2, probe_every=1, eval_n=1, resamples=50,
        grpo=GRPOConfig(steps=2, prompts_per_step=2, num_generations=2),
    )  # fmt: skip
    results = run_learning(config, out, cache=cache)
    return out, results


def test_learning_json_has_every_variant_and_metric_as_fractions(learning_run) -> None:
    out, results = learning_run
    doc = json.loads((out / "learning.json").read_text())
    assert doc == json.loads(json.dumps(results))
    assert list(doc) == ["warm_start", "label-free", "no-tools"]
    for name, r in doc.items():
        for m in METRICS:
            e = r[m]
            assert e is not None, (name, m)
            assert 0.0 <= e["low"] <= e["value"] <= e["high"] <= 1.0, (name, m, e)
        assert r["steps"] >= 1 and r["seconds"] > 0
    assert doc["no-tools"]["steps"] == 2
    curve = doc["label-free"]["curve"]
    assert [row["step"] for row in curve] == [0, 1, 2]
    assert all("probe_accuracy" in row for row in curve)
    assert "reward" in curve[1] and "pseudo_label_accuracy" in curve[1]
    meta = json.loads((out / "learning_meta.json").read_text())
    assert "label_free_gain" in meta["goals"] and meta["config"]["variants"] == [
        "label-free", "no-tools"
    ]  # fmt: skip


def test_checkpoints_record_their_profile_and_the_report_has_curves(learning_run) -> None:
    from medgym.eval.harness import EvalConfig, run_eval

    out, results = learning_run
    page = (out / "learning.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "label-free" in page
    ckpt = results["label-free"]["checkpoint"]
    # `medgym eval --policy hf:CKPT` with no profile option runs the checkpoint's own profile
    res = run_eval(
        EvalConfig(policy=f"hf:{ckpt}", data="synthetic:test", resamples=10, progress=False,
                   data_kwargs={"num_samples": 2, "image_size": 512}),
        out / "re-eval", report=False,
    )  # fmt: skip
    assert res.results["profile"] == "tiny-vlm"
    views = res.groups["main"][0].trajectories[0].views
    assert max(views[0].out_size) <= 168  # tiny views, not Qwen2.5-VL's 448 px


def test_demo_evaluation_path_gets_answers_from_the_tiny_model(format_warm_dir, tmp_path) -> None:
    """The defect that hid for a release: the demo evaluated the tiny model with the wrong
    profile and it answered 3% of questions. The demo's path now reads the checkpoint's."""
    from medgym.eval import run_demo_eval

    index = run_demo_eval(
        tmp_path, datasets=("synthetic",), policies=(), tiny_model=format_warm_dir,
        num_samples=8, n=1, resamples=10,
    )  # fmt: skip
    assert index.is_file()
    res = json.loads((tmp_path / "synthetic" / "tiny-vlm" / "results.json").read_text())
    assert res["profile"] == "tiny-vlm"
    assert res["conditions"]["main"]["metrics"]["answer_rate"]["value"] >= 0.75


def test_a_profile_that_disagrees_with_the_checkpoint_warns(format_warm_dir, caplog) -> None:
    from medgym.agents.hf_policy import HFPolicy
    from medgym.eval.harness import EvalConfig, resolve_profile

    policy = HFPolicy.from_pretrained(str(format_warm_dir))
    assert policy.profile is not None and policy.profile.name == "tiny-vlm"
    cfg = EvalConfig(policy="hf:x", data="synthetic", profile="qwen2.5-vl")
    with caplog.at_level("WARNING"):
        assert resolve_profile(cfg, policy).name == "qwen2.5-vl"
    assert "trained with profile `tiny-vlm`" in caplog.text
    assert resolve_profile(EvalConfig(policy="hf:x", data="synthetic"), policy).name == "tiny-vlm"
    with pytest.raises(ConfigError, match="unknown model profile"):
        EvalConfig(policy="hf:x", data="synthetic", profile="tiny-vml")


def test_checkpoints_record_their_tiny_task(format_warm_dir, tmp_path) -> None:
    from medgym.agents.tiny_vlm.builder import (
        TASK_FILE,
        load_checkpoint_task,
        save_checkpoint_task,
    )

    assert load_checkpoint_task(format_warm_dir) == "synthetic"  # the warm start writes it
    assert load_checkpoint_task(tmp_path) is None  # a folder that recorded nothing
    save_checkpoint_task(tmp_path, "synthetic3d")
    assert load_checkpoint_task(tmp_path) == "synthetic3d"
    with pytest.raises(ConfigError, match="unknown tiny task"):
        save_checkpoint_task(tmp_path, "synthetic2d")
    (tmp_path / TASK_FILE).write_text('{"task": 3}')
    with pytest.raises(ConfigError, match=re.escape('must hold {"task": NAME}')):
        load_checkpoint_task(tmp_path)
    (tmp_path / TASK_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_checkpoint_task(tmp_path)


def test_eval_flags_take_the_task_the_checkpoint_recorded(tmp_path) -> None:
    from medgym.agents.tiny_vlm import TINY_SESSION, TINY_TASK
    from medgym.agents.tiny_vlm.builder import save_checkpoint_task
    from medgym.eval.cli_commands import task_settings

    save_checkpoint_task(tmp_path, "synthetic")
    data, kwargs, session, note = task_settings(f"hf:{tmp_path}", None, None)
    assert (data, kwargs, session) == ("synthetic:test", TINY_TASK, TINY_SESSION)
    assert note is not None and "recorded by the checkpoint" in note
    # a split of the task's dataset keeps the task's settings
    assert task_settings(f"hf:{tmp_path}", None, "synthetic:validate")[:2] == (
        "synthetic:validate", TINY_TASK,
    )  # fmt: skip
    # another dataset, or `--task none`: the dataset's own defaults (a note says so)
    data, kwargs, session, note = task_settings(f"hf:{tmp_path}", None, "vqa-rad")
    assert (data, kwargs, session) == ("vqa-rad", {}, {}) and "trained on tiny task" in note
    assert task_settings(f"hf:{tmp_path}", "none", "synthetic") == ("synthetic", {}, {}, None)
    # named, not recorded
    assert task_settings("scripted:oracle", "synthetic", None)[:2] == ("synthetic:test", TINY_TASK)
    with pytest.raises(ConfigError, match="--task synthetic is on dataset `synthetic`"):
        task_settings("scripted:oracle", "synthetic", "synthetic3d")
    with pytest.raises(ConfigError, match="give --data"):
        task_settings("scripted:oracle", None, None)
    with pytest.raises(ConfigError, match="unknown tiny task"):
        task_settings("scripted:oracle", "synthetic4d", None)


def test_medgym_eval_of_the_tiny_checkpoint_runs_its_task(format_warm_dir, tmp_path) -> None:
    """`medgym eval --policy hf:CKPT` with no data flags: the tiny task's questions and
    budgets, not the default four-family mix (on which the tiny agent scored 0.06)."""
    from typer.testing import CliRunner

    from medgym.agents.tiny_vlm import TINY_TASK
    from medgym.cli import app

    out = tmp_path / "eval"
    result = CliRunner().invoke(app, [
        "eval", "--policy", f"hf:{format_warm_dir}", "--out", str(out), "--num-samples", "8",
        "--resamples", "10",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "task: synthetic (recorded by the checkpoint" in result.output
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "tiny-vlm"
    assert res["config"]["data_kwargs"]["families"] == list(TINY_TASK["families"])
    assert res["conditions"]["main"]["metrics"]["answer_rate"]["value"] >= 0.75


def test_the_entropy_only_control_gets_no_reward_and_no_penalty() -> None:
    """`entropy-only`: every group reward and every session penalty is 0, so every advantage
    is 0 and only the entropy term can train; the other variants keep the penalties."""
    from medgym.agents import GroupRunner, RandomZoomPolicy
    from medgym.data import load
    from medgym.learning.bench import variant_session
    from medgym.rewards.group import make_group_reward

    v = VARIANTS["entropy-only"]
    samples = load("synthetic", split="validate", num_samples=4, image_size=512)
    reward = make_group_reward(v.reward, embedder="hashing", **v.options)
    groups = GroupRunner(n=4, progress=False).run(strip_labels(samples), RandomZoomPolicy())
    assert all(r == 0.0 for g in groups for r in reward.reward(g).rewards)
    penalties = variant_session(v, "synthetic", penalty_weight=5.0).penalties
    assert (penalties.format_error, penalties.tool_error, penalties.budget) == (0, 0, 0)
    kept = variant_session(VARIANTS["label-free"], "synthetic").penalties
    assert kept.format_error > 0 and kept.tool_error > 0
    assert variant_session(VARIANTS["no-tools"], "synthetic").tools == ()
