"""Group rewards on verl data: all n rollouts of a uid scored together by ``medgym.rewards``.

- :func:`compute_score` is verl's per-sample hook (``reward.custom_reward_function``): the gym
  env's episode score (accuracy, format, penalties), for runs that need no group reward.
- :func:`score_outputs` scores the outputs of one uid (the TQ worker calls it, see
  :mod:`medgym.integrations.verl.tq_worker`), from the recorded trajectories when the medgym
  agent loop ran (views in original pixels for CCA), else from the decoded texts.
- :func:`assign_group_rewards` does the same on a whole ``DataProto`` batch and writes
  ``rm_scores`` (the reward at each response's last token), the form verl's GRPO advantage takes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medgym.core.sample import Sample, text_only_sample
from medgym.core.trajectory import Trajectory
from medgym.envs.config import SessionConfig
from medgym.envs.scoring import score_episode
from medgym.envs.turns import text_trajectory
from medgym.errors import ConfigError
from medgym.integrations.scoring import GroupScore, resolve_group_reward, score_group
from medgym.integrations.verl.agent_loop import SESSION_CONFIG_KEY, TRAJECTORY_KEY
from medgym.rewards.group import GroupReward

__all__ = ["assign_group_rewards", "compute_score", "reward_extra_info", "score_outputs"]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | None,
    extra_info: Mapping[str, Any] | None = None,
    session_config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Verl's per-sample score: the gym env's episode score (:func:`score_episode`).

    When the medgym agent loop ran, ``extra_info`` holds its trajectory (verl merges the loop's
    ``extra_fields`` into it) and the session config it ran with, so the score is the
    session's to the digit. Otherwise ``solution_str`` is judged as one final turn by the
    session's rules (:func:`text_trajectory`) under ``session_config`` (verl's
    ``custom_reward_function.reward_kwargs.session_config``).

    Returns:
        ``{"score", "accuracy", "format", "penalty", "labelled", "total"}``; unlabelled rows
        score 0 accuracy (use a group reward for label-free runs).
    """
    info = extra_info or {}
    sample = _sample_of(info) or text_only_sample("verl")
    if sample.answer is None and ground_truth:
        sample = sample.model_copy(update={"answer": str(ground_truth)})
    config = _session_config(info, session_config)
    trajectory = _trajectory_of(info) or text_trajectory(str(solution_str), sample, config)
    score = score_episode(trajectory, sample, config)
    return {"score": score.total, **score.parts()}


def _trajectory_of(info: Mapping[str, Any]) -> Trajectory | None:
    raw = info.get(TRAJECTORY_KEY)
    return Trajectory.model_validate_json(raw) if isinstance(raw, str) else None


def _session_config(
    info: Mapping[str, Any], fallback: Mapping[str, Any] | None = None
) -> SessionConfig:
    """The config the agent loop ran with (``extra_info``), else ``fallback``."""
    raw = info.get(SESSION_CONFIG_KEY)
    if isinstance(raw, str):
        return SessionConfig.from_dict(json.loads(raw))
    return SessionConfig.from_dict(fallback)


def score_outputs(
    reward: GroupReward | str | Mapping[str, Any] | None,
    extra_fields: Sequence[Mapping[str, Any]],
    *,
    uid: str,
    sample: Sample | None = None,
    texts: Sequence[str] | None = None,
    session_config: Mapping[str, Any] | None = None,
) -> GroupScore:
    """Score one uid's rollouts with :func:`score_group`, as TRL's reward scores a group.

    Trajectories come from ``extra_fields`` (the agent loop's); without them each of ``texts``
    is judged as one final turn (:func:`text_trajectory`).

    Raises:
        ConfigError: Neither trajectories nor texts for every rollout.
    """
    raw = [f.get(TRAJECTORY_KEY) for f in extra_fields]
    sample = sample or text_only_sample(uid)
    config = _session_config(extra_fields[0] if extra_fields else {}, session_config)
    if raw and all(isinstance(r, str) for r in raw):
        trajs = [Trajectory.model_validate_json(r) for r in raw]  # type: ignore[arg-type]
    elif texts is not None and len(texts) == len(extra_fields):
        trajs = [
            text_trajectory(str(t), sample, config, trajectory_id=f"{uid}#{i}")
            for i, t in enumerate(texts)
        ]
    else:
        raise ConfigError(
            f"uid {uid}: expected {TRAJECTORY_KEY!r} in every rollout's extra_fields or one text "
            f"per rollout; got {sum(isinstance(r, str) for r in raw)} trajectories and "
            f"{0 if texts is None else len(texts)} texts for {len(extra_fields)} rollouts"
        )
    return score_group(resolve_group_reward(reward), sample, trajs, config, group_id=uid)


def reward_extra_info(result: GroupScore, i: int) -> dict[str, float]:
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
    data: Any,
    reward: GroupReward | str | Mapping[str, Any] | None,
    *,
    tokenizer: Any = None,
    session_config: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Score a ``DataProto`` by uid groups and write ``batch["rm_scores"]``.

    ``non_tensor_batch`` needs ``uid``; ``medgym_trajectory`` (from the agent loop) or a
    ``tokenizer`` to decode ``responses``; ``extra_info`` (with the sample) when present.

    Returns:
        Mean reward and mean of each part over the batch (for logging).
    """
    import torch

    group_reward = resolve_group_reward(reward)
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
            group_reward,
            fields,
            uid=uid,
            sample=_sample_of(extra[idx[0]]) if extra is not None else None,
            texts=[texts[i] for i in idx] if texts is not None else None,
            session_config=session_config,
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
