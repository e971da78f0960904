"""Group rewards on verl data: all n rollouts of a uid scored together by ``medgym.rewards``.

- :func:`compute_score` is verl's per-sample hook (``reward.custom_reward_function``): the
  supervised accuracy + format score, for runs that need no group reward.
- :func:`score_outputs` scores the outputs of one uid (the TQ worker calls it, see
  :mod:`medgym.integrations.verl.tq_worker`), from the recorded trajectories when the medgym
  agent loop ran (views in original pixels for CCA), else from the decoded texts.
- :func:`assign_group_rewards` does the same on a whole ``DataProto`` batch and writes
  ``rm_scores`` (the reward at each response's last token), the form verl's GRPO advantage takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medgym.core.sample import Sample
from medgym.core.trajectory import Trajectory
from medgym.errors import ConfigError
from medgym.integrations.verl.agent_loop import TRAJECTORY_KEY
from medgym.rewards import GroupReward, GroupRewardResult, make_group_reward, score_uid_group
from medgym.rewards.scoring import format_score, score_answer

__all__ = ["assign_group_rewards", "compute_score", "reward_extra_info", "score_outputs"]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Verl's per-sample score: accuracy against ``ground_truth`` plus 0.1 x format.

    Returns ``{"score", "accuracy", "format"}``; unlabelled rows score 0 accuracy (use a group
    reward for label-free runs).
    """
    from medgym.envs.parsing import parse_turn

    parsed = parse_turn(solution_str)
    options: Sequence[str] = ()
    if extra_info and extra_info.get("sample"):
        options = Sample.model_validate_json(extra_info["sample"]).options
    acc = score_answer(parsed.answer, ground_truth, options=options) if ground_truth else 0.0
    fmt = format_score(solution_str)
    return {"score": acc + 0.1 * fmt, "accuracy": acc, "format": fmt}


def _resolve(reward: GroupReward | str | Mapping[str, Any]) -> GroupReward:
    return make_group_reward(reward) if isinstance(reward, (str, Mapping)) else reward


def score_outputs(
    reward: GroupReward | str | Mapping[str, Any],
    extra_fields: Sequence[Mapping[str, Any]],
    *,
    uid: str,
    sample: Sample | None = None,
    texts: Sequence[str] | None = None,
) -> GroupRewardResult:
    """Score one uid's rollouts: trajectories from ``extra_fields``, else ``texts``.

    Raises:
        ConfigError: Neither trajectories nor texts for every rollout.
    """
    raw = [f.get(TRAJECTORY_KEY) for f in extra_fields]
    if raw and all(isinstance(r, str) for r in raw):
        trajs = [Trajectory.model_validate_json(r) for r in raw]  # type: ignore[arg-type]
        return score_uid_group(_resolve(reward), trajectories=trajs, sample=sample, uid=uid)
    if texts is None or len(texts) != len(extra_fields):
        raise ConfigError(
            f"uid {uid}: expected {TRAJECTORY_KEY!r} in every rollout's extra_fields or one text "
            f"per rollout; got {sum(isinstance(r, str) for r in raw)} trajectories and "
            f"{0 if texts is None else len(texts)} texts for {len(extra_fields)} rollouts"
        )
    return score_uid_group(
        _resolve(reward),
        list(texts),
        sample.answer if sample is not None else None,
        uid=uid,
        question=sample.question if sample is not None else "?",
    )


def reward_extra_info(result: GroupRewardResult, i: int) -> dict[str, float]:
    """Rollout ``i``'s reward parts and the group's numeric diagnostics, flat (verl metrics)."""
    out = {f"part/{k}": float(v[i]) for k, v in result.parts.items()}
    for k, v in result.diagnostics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"group/{k}"] = float(v)
    return out


def _sample_of(extra_info: Any) -> Sample | None:
    if isinstance(extra_info, Mapping) and extra_info.get("sample"):
        return Sample.model_validate_json(extra_info["sample"])
    return None


def assign_group_rewards(
    data: Any, reward: GroupReward | str | Mapping[str, Any], *, tokenizer: Any = None
) -> dict[str, float]:
    """Score a ``DataProto`` by uid groups and write ``batch["rm_scores"]``.

    ``non_tensor_batch`` needs ``uid``; ``medgym_trajectory`` (from the agent loop) or a
    ``tokenizer`` to decode ``responses``; ``extra_info`` (with the sample) when present.

    Returns:
        Mean reward and mean of each part over the batch (for logging).
    """
    import torch

    reward = _resolve(reward)
    nt = data.non_tensor_batch
    uids = [str(u) for u in nt["uid"]]
    n = len(uids)
    if "response_mask" in data.batch:
        mask = data.batch["response_mask"]
    else:
        mask = data.batch["attention_mask"][:, -data.batch["responses"].shape[1] :]
    texts: list[str] | None = None
    if TRAJECTORY_KEY not in nt:
        if tokenizer is None:
            raise ConfigError(f"no {TRAJECTORY_KEY!r} in the batch: pass a tokenizer to decode")
        texts = [
            tokenizer.decode(r[m.bool()], skip_special_tokens=True)
            for r, m in zip(data.batch["responses"], mask, strict=True)
        ]
    members: dict[str, list[int]] = {}
    for i, u in enumerate(uids):
        members.setdefault(u, []).append(i)
    scores = np.zeros(n, dtype=np.float32)
    parts: dict[str, np.ndarray] = {}
    for uid, idx in members.items():
        fields = [
            {TRAJECTORY_KEY: nt[TRAJECTORY_KEY][i]} if TRAJECTORY_KEY in nt else {} for i in idx
        ]
        extra = nt.get("extra_info")
        res = score_outputs(
            reward,
            fields,
            uid=uid,
            sample=_sample_of(extra[idx[0]]) if extra is not None else None,
            texts=[texts[i] for i in idx] if texts is not None else None,
        )
        for j, i in enumerate(idx):
            scores[i] = res.rewards[j]
            for k, v in res.parts.items():
                parts.setdefault(k, np.zeros(n, dtype=np.float32))[i] = v[j]
    last = (mask.sum(-1) - 1).clamp(min=0).long()
    rm = torch.zeros(mask.shape, dtype=torch.float32)
    rm[torch.arange(n), last] = torch.as_tensor(scores)
    data.batch["rm_scores"] = rm
    metrics = {"reward/mean": float(scores.mean())}
    metrics.update({f"reward/{k}": float(v.mean()) for k, v in parts.items()})
    return metrics
