"""Train a medgym agent with verl: ``python training/run_verl.py [--config NAME] [overrides]``.

Composes a hydra config from ``training/configs/verl`` (on top of verl's ``ppo_trainer``),
prepares the parquet data, validates the config with verl's own ``validate_config`` and launches
verl's v1 PPO/GRPO trainer. ``--dry-run`` does everything that runs on CPU instead: data, config
validation, the tools from the YAML, the dataset class, and a few medgym agent-loop episodes
against a tiny offline Qwen2.5-VL, scored as one group and turned into GRPO advantages.

Examples::

    python training/run_verl.py --dry-run
    python training/run_verl.py --config grpo_qwen2_5_vl_7b medgym.dataset=vqa_rad \\
        medgym.dataset_kwargs.root=/data/vqa_rad trainer.n_gpus_per_node=8
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG_DIR = HERE / "configs" / "verl"
TOOLS_YAML = REPO / "tools" / "verl_zoom.yaml"
VERL_SEARCHPATH = "hydra.searchpath=[pkg://verl.trainer.config]"

logger = logging.getLogger("run_verl")


def shipped_configs() -> list[str]:
    """Names of the runnable configs (every yaml here but the base and the agent registry)."""
    skip = {"medgym_base", "agent_loop"}
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in skip)


def compose(name: str, overrides: Sequence[str] = ()) -> Any:
    """The composed config, with the agent-loop registry path made absolute."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = hydra_compose(config_name=name, overrides=[VERL_SEARCHPATH, *overrides])
    agent = cfg.actor_rollout_ref.rollout.agent
    path = Path(agent.agent_loop_config_path)
    if not path.is_absolute():
        agent.agent_loop_config_path = str(REPO / path)
    return cfg


def validate(cfg: Any) -> None:
    """verl's own config validation (raises on an inconsistent config)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(
        cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )


def prepare(cfg: Any, out_dir: Path, limit: int | None = None) -> tuple[Path, Path]:
    """Write train/val parquet for ``cfg.medgym.dataset`` and point ``cfg.data`` at them."""
    from omegaconf import OmegaConf

    from medgym.data import load
    from medgym.integrations.verl.prepare import prepare_dataset

    m = cfg.medgym
    kwargs = OmegaConf.to_container(m.dataset_kwargs, resolve=True) or {}
    samples = load(m.dataset, limit=limit, **kwargs)  # type: ignore[arg-type]
    train, val = prepare_dataset(
        samples,
        out_dir,
        data_source=m.dataset,
        profile=m.profile,
        drop_labels=bool(m.label_free),
        agent_name=m.agent_name,
    )
    cfg.medgym.data_dir = str(out_dir)
    return train, val


def _agent_entry(cfg: Any) -> dict[str, Any]:
    import yaml

    entries = yaml.safe_load(
        Path(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path).read_text()
    )
    for e in entries:
        if e["name"] == cfg.actor_rollout_ref.rollout.agent.default_agent_loop:
            return dict(e)
    raise SystemExit("the default agent loop is not in agent_loop.yaml")


async def _episodes(
    cfg: Any, processor: Any, model: Any, rows: list[dict[str, Any]], max_turns: int
) -> list[Any]:
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap

    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
    from medgym.integrations.verl.dataset import MedgymRLHFDataset
    from medgym.integrations.verl.testing import ModelServer

    entry = _agent_entry(cfg)
    session_config = {**entry.get("session_config", {}), "max_turns": max_turns}
    server = ModelServer(model, processor, max_new_tokens=16)
    outs = []
    for row in rows:
        loop = MedgymAgentLoop(
            trainer_config=DictConfigWrap(cfg),
            server_manager=server,
            tokenizer=processor.tokenizer,
            processor=processor,
            dataset_cls=MedgymRLHFDataset,
            data_config=DictConfigWrap(cfg.data),
            hf_model_type="qwen2_5_vl",
            session_config=session_config,
            profile=entry.get("profile", "qwen2.5-vl"),
        )
        outs.append(await loop.run({"temperature": 1.0}, **row))
    return outs


def dry_run(cfg: Any, episodes: int = 2, max_turns: int = 2) -> dict[str, Any]:
    """Everything that runs on CPU; returns a summary (also logged)."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.utils.dataset.rl_dataset import get_dataset_class

    from medgym.agents.tiny_vlm import build_tiny_vlm, load_tiny_vlm
    from medgym.integrations.verl.rewards import score_outputs
    from medgym.integrations.verl.tq_worker import reward_from_config

    tmp = Path(tempfile.mkdtemp(prefix="medgym_verl_dry_"))
    if cfg.medgym.dataset == "synthetic":
        OmegaConf.update(cfg, "medgym.dataset_kwargs.num_samples", 4, force_add=True)
    prepare(cfg, tmp / "data", limit=8)
    validate(cfg)
    tools = initialize_tools_from_config(str(TOOLS_YAML))
    model, processor = load_tiny_vlm(build_tiny_vlm(tmp / "tiny_vlm"))
    data_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    data_cfg.cache_dir = str(tmp / "cache")
    ds = get_dataset_class(data_cfg)(
        str(tmp / "data" / "train.parquet"), processor.tokenizer, data_cfg, processor=processor
    )
    item = ds[0]
    rows = [
        {
            "raw_prompt": ds[0]["raw_prompt"],
            "extra_info": item["extra_info"],
            "tools_kwargs": item["tools_kwargs"],
        }
        for _ in range(episodes)
    ]
    torch.manual_seed(0)
    outs = asyncio.run(_episodes(cfg, processor, model, rows, max_turns))
    result = score_outputs(reward_from_config(cfg), [o.extra_fields for o in outs], uid="dry")
    width = max(len(o.response_mask) for o in outs)
    mask = torch.zeros((len(outs), width))
    scores = torch.zeros((len(outs), width))
    for i, o in enumerate(outs):
        mask[i, : len(o.response_mask)] = 1
        scores[i, len(o.response_mask) - 1] = result.rewards[i]
    adv, _ = compute_grpo_outcome_advantage(
        scores, mask, np.array(["dry"] * len(outs), dtype=object)
    )
    summary = {
        "dataset_class": type(ds).__name__,
        "train_rows": len(ds),
        "tools": [t.name for t in tools],
        "episodes": len(outs),
        "turns": [o.num_turns for o in outs],
        "rewards": result.rewards,
        "advantage_abs_mean": float(adv.abs().mean()),
    }
    logger.info("dry run ok: %s", summary)
    return summary


def train(cfg: Any) -> None:
    """Launch verl's v1 trainer (needs GPUs and a Ray cluster or a local Ray)."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(
            "run_verl.py: no CUDA GPU found. verl's trainer needs GPUs (vLLM/SGLang rollouts, "
            "NCCL). Use --dry-run on CPU to check data, config, tools, agent loop and rewards."
        )
    if not cfg.trainer.use_v1:
        raise SystemExit("run_verl.py supports only verl's v1 trainer (trainer.use_v1=true)")
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo

    if cfg.medgym.prepare:
        prepare(cfg, Path(cfg.medgym.data_dir))
    validate(cfg)
    run_ppo(cfg, task_runner_class=TaskRunnerV1)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description="train a medgym agent with verl")
    p.add_argument("--config", default="grpo_qwen2_5_vl_7b", choices=shipped_configs())
    p.add_argument("--dry-run", action="store_true", help="CPU checks only, no training")
    p.add_argument("--episodes", type=int, default=2, help="agent-loop episodes in --dry-run")
    p.add_argument("overrides", nargs="*", help="hydra overrides, key=value")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose(a.config, a.overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise SystemExit(f"run_verl.py: cannot compose config {a.config!r}: {e}") from e
    if a.dry_run:
        return dry_run(cfg, episodes=a.episodes)
    train(cfg)
    return None


if __name__ == "__main__":
    sys.exit(0 if main() is not False else 1)
