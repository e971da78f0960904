"""training/run_verl.py: every shipped config composes and passes verl's validate_config."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("verl")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run_verl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_verl", REPO / "training" / "run_verl.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CONFIGS = sorted(
    p.stem
    for p in (REPO / "training" / "configs" / "verl").glob("*.yaml")
    if p.stem not in {"medgym_base", "agent_loop"}
)


def test_configs_are_found(run_verl: ModuleType) -> None:
    assert run_verl.shipped_configs() == CONFIGS
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("name", CONFIGS)
def test_compose_and_validate(run_verl: ModuleType, name: str, tiny_vlm_path: Path) -> None:
    from omegaconf import OmegaConf

    from medgym.rewards import make_group_reward

    # a critic's config loads its tokenizer: point the models at the offline tiny one
    cfg = run_verl.compose(name, [f"actor_rollout_ref.model.path={tiny_vlm_path}"])
    run_verl.validate(cfg)
    assert cfg.trainer.use_v1 is True
    assert Path(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path).is_file()
    assert cfg.reward.custom_reward_function.path.startswith("pkg://")
    spec = cfg.medgym.reward
    make_group_reward(OmegaConf.to_container(spec) if not isinstance(spec, str) else spec)
    # training data from the train split: `synthetic` loaded without one is its test split
    assert cfg.medgym.dataset_kwargs.split == "train"


def test_ppo_uses_a_critic(run_verl: ModuleType) -> None:
    from verl.trainer.ppo.utils import need_critic

    cfg = run_verl.compose("ppo_qwen2_5_vl_7b")
    assert need_critic(cfg) and cfg.critic.model.path == cfg.actor_rollout_ref.model.path
    assert not need_critic(run_verl.compose("grpo_qwen2_5_vl_7b"))


def test_inconsistent_batch_fails_validation(run_verl: ModuleType) -> None:
    cfg = run_verl.compose(
        "grpo_qwen2_5_vl_7b", ["data.train_batch_size=3", "actor_rollout_ref.rollout.n=1"]
    )
    with pytest.raises(AssertionError, match="divisible"):
        run_verl.validate(cfg)


def test_bad_override_is_a_clear_exit(run_verl: ModuleType) -> None:
    with pytest.raises(SystemExit, match="cannot compose"):
        run_verl.main(["--config", "grpo_qwen2_5_vl_7b", "no_such_key=1"])


def test_without_gpu_training_exits_with_a_message(run_verl: ModuleType) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="--dry-run"):
        run_verl.main([])


def test_dry_run(run_verl: ModuleType) -> None:
    summary = run_verl.main(["--dry-run", "--episodes", "2"])
    assert summary["dataset_class"] == "MedgymRLHFDataset"
    assert summary["tools"] == ["zoom_in", "crop", "reground"]
    assert summary["episodes"] == 2 and all(t >= 2 for t in summary["turns"])
    assert len(summary["rewards"]) == 2


def test_dry_run_grows_a_branch_tree_of_n_leaves(run_verl: ModuleType) -> None:
    from medgym.integrations.verl.metrics import read_records

    summary = run_verl.main(["--dry-run", "--config", "grpo_qwen2_5_vl_7b_evr", "--episodes", "4"])
    assert summary["agent_loop"] == "medgym_agent_branch" and summary["evr"] == "branch"
    assert summary["episodes"] == 4 and len(summary["rewards"]) == 4
    # each fork re-generates from its branch point: never fewer calls than the roots' turns
    assert summary["server_calls"] >= 4 + summary["evr_branches"]
    (record,) = read_records(summary["metrics_dir"])
    assert record["n"] == 4 and record["branched"] is True and "evr/fire_rate" in record


def test_evr_without_logprobs_is_a_clear_exit(run_verl: ModuleType) -> None:
    with pytest.raises(SystemExit, match=r"calculate_log_probs=true"):
        run_verl.main(
            [
                "--dry-run",
                "--config",
                "grpo_qwen2_5_vl_7b_evr",
                "actor_rollout_ref.rollout.calculate_log_probs=false",
            ]
        )


def test_gpu_smoke_dry_run_passes_on_cpu(tmp_path: Path) -> None:
    """`training/gpu_smoke.sh --dry-run`, as written: the smoke model builds, the smoke config
    validates, and one group runs through the medgym TQ worker with EVR reground. (It caught a
    prompt of 1,589 tokens against the first smoke config's prompt_length of 1,024.)"""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", str(REPO / "training" / "gpu_smoke.sh"), "--dry-run", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["ok"] and report["dry_run"]["agent_loop"] == "medgym_agent_reground"
    assert report["dry_run"]["episodes"] == 4
    assert (tmp_path / "model" / "config.json").is_file()


def test_gpu_smoke_refuses_unknown_options() -> None:
    import subprocess

    proc = subprocess.run(
        ["bash", str(REPO / "training" / "gpu_smoke.sh"), "--dryrun"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown option --dryrun" in proc.stderr


def _documented_runs() -> list[tuple[str, list[str]]]:
    """``(config, overrides)`` of every ``python training/run_verl.py`` line in the verl docs."""
    import shlex

    text = (REPO / "docs" / "training_verl.md").read_text().replace("\\\n", " ")
    runs = []
    for line in text.splitlines():
        if "python training/run_verl.py" not in line or line.lstrip().startswith("`"):
            continue
        words = shlex.split(line.split("python training/run_verl.py", 1)[1], comments=True)
        config, overrides, k = "grpo_qwen2_5_vl_7b", [], 0
        while k < len(words):
            if words[k] == "--config":
                config, k = words[k + 1], k + 2
                continue
            if not words[k].startswith("--") and "=" in words[k]:
                overrides.append(words[k])
            k += 1
        runs.append((config, overrides))
    return runs


DOCUMENTED = _documented_runs()


def test_the_docs_have_run_commands() -> None:
    assert len(DOCUMENTED) >= 6
    assert any(o for _, o in DOCUMENTED)


@pytest.mark.parametrize(("config", "overrides"), DOCUMENTED)
def test_a_documented_run_command_composes(
    run_verl: ModuleType, config: str, overrides: list[str]
) -> None:
    """Each command of docs/training_verl.md composes as written (its hydra overrides too)."""
    cfg = run_verl.compose(config, overrides)
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        node: object = cfg
        for part in key.split("."):
            node = node[part]  # type: ignore[index]
        assert str(node).lower() == value.lower(), f"{item}: composed {node!r}"
