"""The run configs: YAML recipes parse with trl's parser; group-splitting batches are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from medgym.errors import ConfigError
from medgym.integrations.trl import MedGymArguments, build_trainer, default_grpo_config

CONFIGS = Path(__file__).parents[3] / "training" / "configs"


@pytest.mark.parametrize(
    ("name", "generations"),
    [
        pytest.param("trl_tiny_cpu.yaml", 4, id="tiny-cpu"),
        pytest.param("trl_qwen2_5_vl_3b.yaml", 8, id="qwen3b"),
    ],
)
def test_yaml_recipes_parse_and_the_cli_wins(name, generations) -> None:
    from trl import GRPOConfig, TrlParser

    args = ["--config", str(CONFIGS / name), "--num_samples", "3", "--use_cpu", "true"]
    args += ["--bf16", "false", "--gradient_checkpointing", "false"]
    margs, gargs = TrlParser((MedGymArguments, GRPOConfig)).parse_args_and_config(args)
    assert margs.reward == "label_free" and margs.num_samples == 3
    assert gargs.num_generations == generations
    assert (gargs.per_device_train_batch_size * gargs.steps_per_generation) % generations == 0


def test_batch_that_splits_groups_is_refused(tmp_path) -> None:
    gargs = default_grpo_config(tmp_path, per_device_train_batch_size=3, num_generations=3)
    gargs.num_generations = 2  # 3 rollouts per process cannot hold whole groups of 2
    with pytest.raises(ConfigError, match="whole groups"):
        build_trainer(MedGymArguments(model=str(tmp_path)), gargs)


def test_arguments_are_validated() -> None:
    with pytest.raises(ConfigError, match="num_samples"):
        MedGymArguments(num_samples=0)


def test_tiny_checkpoint_trains_on_the_episodes_its_warm_start_taught() -> None:
    """The default run (tiny-vlm) uses TINY_SESSION and TINY_TASK unless a field is set."""
    from medgym.agents.tiny_vlm import TINY_SESSION, TINY_TASK
    from medgym.envs.config import SessionConfig

    margs = MedGymArguments()
    assert margs.session_config(task="synthetic") == SessionConfig.from_dict(TINY_SESSION)
    # the train split: `synthetic` loaded without one is its test split, which eval reads
    assert margs.dataset_kwargs(task="synthetic") == {"split": "train", "num_samples": 16,
                                                      **TINY_TASK}  # fmt: skip
    assert margs.session_config() == SessionConfig()  # another model: the session defaults
    custom = MedGymArguments(max_turns=4, session='{"max_calls_per_turn": 2}', penalty_weight=2)
    cfg = custom.session_config(task="synthetic")
    assert (cfg.max_turns, cfg.max_images, cfg.max_calls_per_turn) == (4, 1, 2)
    assert cfg.penalties.format_error == pytest.approx(2 * SessionConfig().penalties.format_error)
    with pytest.raises(ConfigError, match="did you mean `max_calls_per_turn`"):
        MedGymArguments(session='{"max_calls_per_tur": 2}')
    with pytest.raises(ConfigError, match="JSON object"):
        MedGymArguments(session="[1, 2]")


def test_a_tiny_checkpoint_trains_on_its_recorded_task_when_the_dataset_is_that_task(
    tmp_path,
) -> None:
    from medgym.agents.tiny_vlm.builder import save_checkpoint_task
    from medgym.integrations.trl.train import tiny_task_for

    assert tiny_task_for(tmp_path, "synthetic") == "synthetic"  # nothing recorded: the task
    assert tiny_task_for(tmp_path, "synthetic3d") == "synthetic3d"  # on that dataset
    assert tiny_task_for(tmp_path, "vqa_rad") is None  # no tiny task: the dataset's defaults
    save_checkpoint_task(tmp_path, "synthetic3d")
    assert tiny_task_for(tmp_path, "synthetic3d") == "synthetic3d"
    assert tiny_task_for(tmp_path, "synthetic") == "synthetic"  # recorded one is elsewhere
    with pytest.raises(ConfigError, match="unknown tiny task"):
        MedGymArguments().dataset_kwargs(task="nope")


def test_a_release_on_disk_is_loaded_with_a_limit_not_num_samples(tmp_path) -> None:
    """``--dataset slake`` (the 3B recipe) passed ``num_samples``, which SLAKE's loader refuses."""
    from medgym.data import load

    margs = MedGymArguments(dataset="slake", num_samples=5, dataset_root=str(tmp_path))
    kwargs = margs.dataset_kwargs()
    assert kwargs["limit"] == 5 and "num_samples" not in kwargs and kwargs["split"] == "train"
    with pytest.raises(Exception) as info:  # no release in tmp_path: a data error, not an option
        load("slake", **kwargs)
    assert "takes no option" not in str(info.value)


def test_the_tiny_yaml_writes_out_the_embedded_default() -> None:
    """`trl_tiny_cpu.yaml` says it is the embedded default written out: the two must agree."""
    import yaml

    from medgym.integrations.trl.train import CPU_DEFAULTS

    written = yaml.safe_load((CONFIGS / "trl_tiny_cpu.yaml").read_text())
    shared = (set(written) & set(CPU_DEFAULTS)) - {"report_to"}  # tensorboard when installed
    assert {"learning_rate", "entropy_coef", "max_steps"} <= shared
    assert {k: written[k] for k in shared} == {k: CPU_DEFAULTS[k] for k in shared}
