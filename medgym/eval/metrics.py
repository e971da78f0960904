"""Per-episode and per-sample records, and the headline and per-group metrics built from them.

A trajectory counts as *correct* when its supervised score is 1 (closed: exact match; open:
exact match or full token recall). Open answers also report token recall and F1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from medgym.core.answers import score_answer, token_f1, token_recall
from medgym.core.bbox import iou
from medgym.core.trajectory import Group, Trajectory
from medgym.envs.config import SessionConfig
from medgym.envs.scoring import score_episode
from medgym.eval.bootstrap import Estimate, bootstrap_ratio
from medgym.rewards.pseudo import group_answers, majority_label

__all__ = [
    "GROUP_FIELDS",
    "JudgeFn",
    "episode_record",
    "group_metrics",
    "headline_metrics",
    "pass_at_k",
    "sample_record",
    "zoom_iou",
]

GROUP_FIELDS = ("dataset", "modality", "body_part", "question_type", "answer_type")
"""Sample attributes the metrics are broken down by."""

JudgeFn = Callable[[str, Sequence[str | None], str, Sequence[str]], list[float]]
"""``(question, predictions, reference, options) -> scores`` (e.g. ``LLMJudge.score_many``)."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): chance that k of n rollouts hold >= 1 of c correct.

    Example:
        >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
        (0.25, 1.0, 0.0)
    """
    if k > n or k < 1 or c < 0 or c > n:
        return float("nan")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def zoom_iou(traj: Trajectory, group: Group) -> float | None:
    """Best IoU of any executed region with an evidence box of the same image.

    ``None`` when the sample has no evidence or the episode looked at no region.
    """
    evidence = group.sample.evidence
    regions = traj.executed_regions
    if not evidence or not regions:
        return None
    best = 0.0
    for image_index, box in regions:
        for ev in evidence:
            if ev.image_index == image_index:
                best = max(best, iou(box, ev.bbox_px))
    return best


def _mean_entropy(traj: Trajectory) -> float | None:
    values = [
        v for t in traj.turns if t.token_entropies and not t.injected for v in t.token_entropies
    ]
    return float(np.mean(values)) if values else None


def episode_record(
    traj: Trajectory,
    group: Group,
    judge: float | None = None,
    config: SessionConfig | None = None,
) -> dict[str, Any]:
    """Everything the metrics need about one episode (JSON-friendly).

    ``score``, ``format``, ``penalty`` and ``reward`` are the episode score every adapter gives
    (:func:`~medgym.envs.scoring.score_episode` under ``config``, the condition's session config).
    """
    s = group.sample
    episode = score_episode(traj, s, config or SessionConfig())
    score = episode.accuracy
    open_ = s.answer_type == "open" and s.answer is not None
    return {
        "trajectory_id": traj.id,
        "sample_id": s.id,
        "labelled": s.answer is not None,
        "answer_type": s.answer_type,
        "dataset": s.source or "unknown",
        "modality": s.modality or "unknown",
        "body_part": s.body_part or "unknown",
        "question_type": s.question_type or "unknown",
        "score": score,
        "correct": float(score >= 1.0 - 1e-9),
        "format": episode.format,
        "penalty": episode.penalty,
        "reward": episode.total,
        "recall": token_recall(traj.answer, s.answer) if open_ and s.answer else None,
        "f1": token_f1(traj.answer, s.answer) if open_ and s.answer else None,
        "judge": judge,
        "tool_calls": float(traj.metrics.get("tool_calls", 0.0)),
        "tool_errors": float(traj.metrics.get("tool_errors", 0.0)),
        "answered": float(traj.answer is not None),
        "evr_fired": float(traj.branch_turn is not None or any(t.injected for t in traj.turns)),
        "zoom_iou": zoom_iou(traj, group),
        "mean_entropy": _mean_entropy(traj),
    }


def sample_record(
    group: Group,
    *,
    pseudo: Literal["majority", "fpl"] = "majority",
    embedder: Any = None,
) -> dict[str, Any]:
    """Group-level facts: pass@1, pass@n, majority accuracy, pseudo-label correctness."""
    s = group.sample
    n = len(group)
    scores = [
        score_answer(t.answer, s.answer, answer_type=s.answer_type, options=s.options)
        for t in group.trajectories
    ]
    c = sum(v >= 1.0 - 1e-9 for v in scores)
    answers = group_answers(group)
    vote = majority_label(answers)
    if pseudo == "fpl":
        from medgym.rewards.fpl import fpl_label, resolve_embedder

        label = fpl_label(answers, resolve_embedder(embedder or "hashing")).label
    else:
        label = vote

    def right(text: str) -> float | None:
        if s.answer is None:
            return None
        return float(
            bool(text)
            and score_answer(text, s.answer, answer_type=s.answer_type, options=s.options) >= 1
        )

    return {
        "sample_id": s.id,
        "n": n,
        "correct": c,
        "pass@1": pass_at_k(n, c, 1) if s.answer is not None and n else None,
        "pass@n": pass_at_k(n, c, n) if s.answer is not None and n else None,
        "majority_correct": right(vote.text),
        "pseudo_label": label.text,
        "pseudo_correct": right(label.text),
        "pseudo_confidence": label.confidence,
    }


def _ratio(records: Sequence[dict[str, Any]], key: str, *, resamples: int, seed: int) -> Estimate:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for r in records:
        v = r.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        sums[r["sample_id"]] += float(v)
        counts[r["sample_id"]] += 1.0
    ids = sorted(counts)
    return bootstrap_ratio(
        [sums[i] for i in ids], [counts[i] for i in ids], resamples=resamples, seed=seed
    )


def headline_metrics(
    episodes: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Every headline number with a cluster-bootstrap interval (``Estimate.as_dict`` each)."""
    labelled = [e for e in episodes if e["labelled"]]
    closed = [e for e in labelled if e["answer_type"] == "closed"]
    spec: list[tuple[str, Sequence[dict[str, Any]], str]] = [
        ("accuracy", labelled, "correct"),
        ("score", labelled, "score"),
        ("closed_accuracy", closed, "correct"),
        ("open_recall", labelled, "recall"),
        ("open_f1", labelled, "f1"),
        ("judge_accuracy", labelled, "judge"),
        ("tool_calls_per_episode", episodes, "tool_calls"),
        ("tool_errors_per_episode", episodes, "tool_errors"),
        ("answer_rate", episodes, "answered"),
        ("evr_fire_rate", episodes, "evr_fired"),
        ("zoom_iou", episodes, "zoom_iou"),
        ("pass@1", samples, "pass@1"),
        ("pass@n", samples, "pass@n"),
        ("majority_accuracy", samples, "majority_correct"),
        ("pseudo_label_accuracy", samples, "pseudo_correct"),
        ("pseudo_label_confidence", samples, "pseudo_confidence"),
    ]
    out: dict[str, dict[str, Any]] = {}
    for name, records, key in spec:
        est = _ratio(records, key, resamples=resamples, seed=seed)
        if est.n:
            out[name] = est.as_dict()
    return out


def group_metrics(
    episodes: Sequence[dict[str, Any]],
    *,
    fields: Sequence[str] = GROUP_FIELDS,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Accuracy (with interval) per value of each field: ``{field: {value: estimate}}``."""
    labelled = [e for e in episodes if e["labelled"]]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in fields:
        buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in labelled:
            buckets[str(e[f])].append(e)
        out[f] = {
            value: _ratio(rows, "correct", resamples=resamples, seed=seed).as_dict()
            for value, rows in sorted(buckets.items())
        }
    return out
