"""Train a medgym agent with verl: ``python training/run_verl.py [--config NAME] [overrides]``.

Composes a hydra config from ``training/configs/verl`` (on top of verl's ``ppo_trainer``),
prepares the parquet data, validates the config with verl's own ``validate_config`` (and
medgym's EVR checks) and launches verl's v1 PPO/GRPO trainer. ``--dry-run`` does everything that
runs on CPU instead: data, config validation, the tools from the YAML, the dataset class, and one
question's group of agent-loop episodes against a tiny offline Qwen2.5-VL, run by the medgym TQ
worker through verl's own ``_run_prompt`` (a branch tree when the agent loop has EVR branch on),
scored as one group and turned into GRPO advantages.

Examples::

    python training/run_verl.py --dry-run
    python training/run_verl.py --dry-run --config grpo_qwen2_5_vl_7b_evr
    python training/run_verl.py --smoke [--dry-run] [--out runs/gpu_smoke]   # gpu_smoke.sh
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
    """verl's own config validation, then medgym's (raises on an inconsistent config).

    Raises:
        AssertionError: verl's ``validate_config`` refused the config.
        ConfigError: The agent loop's EVR settings cannot work with the rollout settings.
    """
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from medgym.integrations.verl.evr import check_rollout_config, evr_config_from

    validate_config(
        cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )
    check_rollout_config(
        cfg.actor_rollout_ref.rollout, evr_config_from(_agent_entry(cfg).get("evr"))
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


def _agent_entries(cfg: Any) -> list[dict[str, Any]]:
    import yaml

    path = Path(cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path)
    return [dict(e) for e in yaml.safe_load(path.read_text())]


def _agent_entry(cfg: Any) -> dict[str, Any]:
    name = cfg.actor_rollout_ref.rollout.agent.default_agent_loop
    for e in _agent_entries(cfg):
        if e["name"] == name:
            return e
    raise SystemExit(f"the default agent loop {name!r} is not in agent_loop.yaml")


def _prompt(item: dict[str, Any], agent_name: str) -> dict[str, Any]:
    """One dataset item as verl's TQ worker hands it to ``_run_prompt``."""
    import torch

    prompt = {k: v for k, v in item.items() if not isinstance(v, torch.Tensor)}
    return {**prompt, "uid": "dry-run-0", "agent_name": agent_name, "global_steps": 1}


def _dry_entry(entry: dict[str, Any], max_turns: int, n: int) -> dict[str, Any]:
    """An agent-loop entry for the dry run: short episodes; EVR without its warm-up, with room
    in the small tree for forks (a dry run has no signal history to learn a threshold from)."""
    out = {**entry, "session_config": {**entry.get("session_config", {}), "max_turns": max_turns}}
    if entry.get("evr"):
        out["evr"] = {**entry["evr"], "warmup": 1, "initial_rollouts": max(1, n // 2)}
    return out


def dry_run(cfg: Any, episodes: int = 4, max_turns: int = 2) -> dict[str, Any]:
    """Everything that runs on CPU; returns a summary (also logged)."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.utils.dataset.rl_dataset import get_dataset_class

    from medgym.agents.tiny_vlm import build_tiny_vlm, load_tiny_vlm
    from medgym.integrations.verl.testing import ModelServer, offline_tq_worker

    tmp = Path(tempfile.mkdtemp(prefix="medgym_verl_dry_"))
    if cfg.medgym.dataset == "synthetic":
        OmegaConf.update(cfg, "medgym.dataset_kwargs.num_samples", 4, force_add=True)
    cfg.actor_rollout_ref.rollout.n = episodes
    cfg.medgym.metrics_dir = str(tmp / "medgym_metrics")
    prepare(cfg, tmp / "data", limit=8)
    validate(cfg)
    tools = initialize_tools_from_config(str(TOOLS_YAML))
    model, processor = load_tiny_vlm(build_tiny_vlm(tmp / "tiny_vlm"))
    data_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    data_cfg.cache_dir = str(tmp / "cache")
    ds = get_dataset_class(data_cfg)(
        str(tmp / "data" / "train.parquet"), processor.tokenizer, data_cfg, processor=processor
    )
    agent = _agent_entry(cfg)
    entries = [_dry_entry(e, max_turns, episodes) for e in _agent_entries(cfg)]
    torch.manual_seed(0)
    server = ModelServer(model, processor, max_new_tokens=16)
    trajectory = {"step": 1, "sample_index": 0, "rollout_n": 0, "validate": False}
    with offline_tq_worker(cfg, server, processor, agent_loops=entries) as (worker, queue):
        prompt = _prompt(ds[0], agent["name"])
        asyncio.run(worker._run_prompt(prompt, {"temperature": 1.0, "logprobs": True}, trajectory))
    if queue.status.get(prompt["uid"], [])[-1:] != ["finished"]:
        raise SystemExit(f"run_verl.py --dry-run: the group failed ({queue.status})")
    rows = [queue.rows[k] for k in sorted(queue.rows)]
    width = max(len(r["responses"]) for r in rows)
    mask = torch.zeros((len(rows), width))
    scores = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        mask[i, : len(r["responses"])] = 1
        scores[i, len(r["responses"]) - 1] = float(r["rm_scores"].sum())
    adv, _ = compute_grpo_outcome_advantage(
        scores, mask, np.array([prompt["uid"]] * len(rows), dtype=object)
    )
    evr = [r["extra_fields"].get("medgym_evr") or {} for r in rows]
    summary = {
        "dataset_class": type(ds).__name__,
        "train_rows": len(ds),
        "tools": [t.name for t in tools],
        "agent_loop": agent["name"],
        "evr": (agent.get("evr") or {}).get("mode", "off"),
        "episodes": len(rows),
        "turns": [int(r["num_turns"]) for r in rows],
        "rewards": [float(s.sum()) for s in scores],
        "advantage_abs_mean": float(adv.abs().mean()),
        "evr_fires": sum(e.get("fires", 0.0) for e in evr),
        "evr_branches": sum(e.get("branches", 0.0) for e in evr),
        "server_calls": server.calls,
        "metrics_dir": cfg.medgym.metrics_dir,
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


def smoke(overrides: Sequence[str], out: Path, *, dry: bool) -> dict[str, Any]:
    """The first-run smoke: build the smoke model, train 3 GRPO steps, write ``smoke.json``.

    ``dry``: everything up to the first GPU call (model build, data, config, the dry run).
    """
    import json
    import os
    import time

    from medgym.integrations.verl.smoke import build_smoke_model, smoke_report

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        f"actor_rollout_ref.model.path={out / 'model'}",
        f"medgym.data_dir={out / 'data'}",
        f"medgym.metrics_dir={out / 'medgym_metrics'}",
        f"trainer.default_local_dir={out / 'checkpoints'}",
    ]
    cfg = compose("grpo_smoke", [*paths, *overrides])
    start = time.perf_counter()
    build_smoke_model(out / "model")
    if dry:
        report: dict[str, Any] = {"ok": True, "dry_run": dry_run(cfg), "steps": []}
    else:
        log = out / "verl_metrics.jsonl"
        os.environ["VERL_FILE_LOGGER_PATH"] = str(log)
        train(cfg)
        report = smoke_report(log, out / "medgym_metrics")
    report["seconds"] = time.perf_counter() - start
    (out / "smoke.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    for row in report["steps"]:
        logger.info("smoke step %s", row)
    logger.info("smoke %s in %.0f s: %s", "ok" if report["ok"] else "FAILED",
                report["seconds"], out / "smoke.json")  # fmt: skip
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description="train a medgym agent with verl")
    p.add_argument("--config", default="grpo_qwen2_5_vl_7b", choices=shipped_configs())
    p.add_argument("--dry-run", action="store_true", help="CPU checks only, no training")
    p.add_argument(
        "--smoke", action="store_true", help="the first-run GPU smoke (grpo_smoke, smoke.json)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/gpu_smoke"), help="--smoke's folder")
    p.add_argument(
        "--episodes", type=int, default=4, help="rollout.n of the --dry-run group (its leaves)"
    )
    p.add_argument("overrides", nargs="*", help="hydra overrides, key=value")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from medgym.errors import ConfigError

    if a.smoke:
        try:
            report = smoke(a.overrides, a.out, dry=a.dry_run)
        except ConfigError as e:
            raise SystemExit(f"run_verl.py --smoke: {e}") from e
        if not report["ok"]:
            raise SystemExit(f"run_verl.py --smoke: the run failed; see {a.out / 'smoke.json'}")
        return report
    try:
        cfg = compose(a.config, a.overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise SystemExit(f"run_verl.py: cannot compose config {a.config!r}: {e}") from e
    try:
        if a.dry_run:
            return dry_run(cfg, episodes=a.episodes)
        train(cfg)
    except ConfigError as e:
        raise SystemExit(f"run_verl.py: {e}") from e
    return None


if __name__ == "__main__":
    sys.exit(0 if main() is not False else 1)
