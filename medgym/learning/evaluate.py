"""Evaluation helpers of the learning benchmark: a checkpoint on split C, probes, pseudo labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medgym.core.sample import Sample

__all__ = ["evaluate_checkpoint", "probe_accuracy", "pseudo_label_accuracy"]


def _estimate(metrics: dict[str, Any], name: str) -> dict[str, float] | None:
    e = metrics.get(name)
    if not e or e.get("value") is None:
        return None
    return {"value": float(e["value"]), "low": float(e["low"]), "high": float(e["high"])}


def evaluate_checkpoint(
    path: str | Path,
    samples: Sequence[Sample],
    out_dir: str | Path,
    *,
    n: int = 2,
    resamples: int = 1000,
    seed: int = 0,
    progress: bool = False,
    label: str = "tiny-vlm",
    task: str = "synthetic",
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Evaluate a checkpoint on ``samples`` (main, no-tools, blank-image) with the harness.

    The checkpoint's recorded profile is used; sessions take the budgets of the tiny ``task``
    (:data:`~medgym.agents.tiny_vlm.TINY_TASKS`); replies are sampled at ``temperature``.

    Returns:
        ``{metric: {"value", "low", "high"}}`` for :data:`METRICS` (``None`` where undefined).
    """
    from medgym.agents.hf_policy import HFPolicy
    from medgym.agents.tiny_vlm import get_tiny_task
    from medgym.eval.harness import EvalConfig, run_eval

    spec = get_tiny_task(task)
    policy = HFPolicy.from_pretrained(str(path), name=label, batch_size=64, seed=seed)
    if temperature != policy.sampling.temperature:
        policy = policy.with_sampling(temperature=temperature)
    config = EvalConfig(
        policy=f"hf:{path}", data=f"{spec.dataset}:test", session_options=dict(spec.session),
        n=n, ablations=("no-tools", "blank-image"), resamples=resamples, seed=seed,
        progress=progress, concurrency=64, chunk_size=len(samples),
    )  # fmt: skip
    res = run_eval(config, out_dir, policy=policy, samples=samples)
    cond = res.results["conditions"]
    main = cond["main"]["metrics"]
    return {
        "accuracy": _estimate(main, "accuracy"),
        "answer_rate": _estimate(main, "answer_rate"),
        "tool_calls_per_episode": _estimate(main, "tool_calls_per_episode"),
        "zoom_iou": _estimate(main, "zoom_iou"),
        "no_tools_accuracy": _estimate(cond["no-tools"]["metrics"], "accuracy"),
        "blank_image_accuracy": _estimate(cond["blank-image"]["metrics"], "accuracy"),
    }


def probe_accuracy(policy: Any, samples: Sequence[Sample], session: Any, profile: Any) -> float:
    """Mean accuracy of 2 rollouts per sample on ``samples`` (the curves' fixed probe set)."""
    from medgym.agents.runner import GroupRunner

    runner = GroupRunner(session, profile=profile, n=2, concurrency=64, progress=False)
    groups = runner.run(samples, policy)
    scores = [t.reward_parts.get("accuracy", 0.0) for g in groups for t in g.trajectories]
    return sum(scores) / len(scores)


def pseudo_label_accuracy(record: dict[str, Any], hidden: dict[str, Sample]) -> float | None:
    """Share of groups whose pseudo label matches the hidden label (logged, never used)."""
    from medgym.core.answers import score_answer

    pairs = [
        (p, hidden[sid])
        for sid, p in zip(
            record.get("sample_ids", ()), record.get("pseudo_labels", ()), strict=True
        )
        if p is not None and sid in hidden
    ]
    if not pairs:
        return None
    hits = [
        score_answer(p, s.answer, answer_type="closed", options=s.options) >= 1.0 for p, s in pairs
    ]
    return sum(hits) / len(hits)
