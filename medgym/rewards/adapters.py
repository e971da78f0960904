"""Thin adapters from group rewards to TRL reward functions and verl's per-uid scoring.

No TRL or verl import: these are plain functions over strings, lists and medgym types.

- :func:`trl_reward_fn` gives ``fn(completions, **kw) -> list[float]``; rollouts of the same
  prompt (TRL repeats each prompt ``num_generations`` times) form one group.
- :func:`score_uid_group` scores one verl uid group; :func:`score_batch` groups a flat batch by
  uid, scores each group once and scatters the rewards back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from medgym.core.parsing import parse_turn
from medgym.core.sample import Sample, text_only_sample
from medgym.core.trajectory import Group, Trajectory, Turn
from medgym.errors import ConfigError
from medgym.rewards.group import GroupReward, GroupRewardResult, make_group_reward

__all__ = [
    "completion_text",
    "group_from_texts",
    "score_batch",
    "score_uid_group",
    "trl_reward_fn",
]


def completion_text(completion: object) -> str:
    """The text of a completion: a string, or the last assistant message of a chat list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content(completion.get("content"))
    if isinstance(completion, Sequence):
        for msg in reversed(completion):
            if isinstance(msg, Mapping) and msg.get("role", "assistant") == "assistant":
                return _content(msg.get("content"))
    return ""


def _content(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("text")
        )
    return ""


def _trajectory(text: str, index: int, sample_id: str) -> Trajectory:
    parsed = parse_turn(text)
    answer = parsed.answer if parsed.answer is not None else None
    return Trajectory(
        id=f"{sample_id}#{index}",
        sample_id=sample_id,
        group_id=sample_id,
        turns=[Turn(index=0, action=text, answer=answer, errors=list(parsed.errors))],
        answer=answer,
        terminated=answer is not None,
        metrics={"format_errors": float(len(parsed.errors) + len(parsed.unclosed))},
    )


def _resolve(reward: GroupReward | str | Mapping[str, Any]) -> GroupReward:
    return make_group_reward(reward) if isinstance(reward, (str, Mapping)) else reward


def group_from_texts(
    texts: Sequence[object],
    *,
    group_id: str = "g",
    question: str = "?",
    answer: str | None = None,
    options: Sequence[str] = (),
    modality: str | None = None,
    answer_type: str = "open",
) -> Group:
    """A :class:`Group` built from raw completion texts (answers parsed from ``<answer>``).

    Non-string completions count as empty answers.
    """
    sample = text_only_sample(
        group_id,
        question=question,
        answer=answer,
        options=tuple(str(o) for o in options),
        modality=modality,
        answer_type="closed" if answer_type == "closed" else "open",
    )
    trajs = [_trajectory(completion_text(t), i, group_id) for i, t in enumerate(texts)]
    return Group(id=group_id, sample=sample, trajectories=trajs)


def score_uid_group(
    reward: GroupReward | str | Mapping[str, Any],
    solution_strs: Sequence[object] | None = None,
    ground_truth: str | None = None,
    *,
    trajectories: Sequence[Trajectory] | None = None,
    sample: Sample | None = None,
    uid: str = "g",
    question: str = "?",
    options: Sequence[str] = (),
    modality: str | None = None,
) -> GroupRewardResult:
    """Score one verl uid group: from recorded trajectories when given, else from the texts.

    Raises:
        ConfigError: When neither ``trajectories`` nor ``solution_strs`` is given.
    """
    reward = _resolve(reward)
    if trajectories is not None:
        if sample is None:
            sample = text_only_sample(
                uid,
                question=question,
                answer=ground_truth,
                options=tuple(options),
                modality=modality,
            )
        group = Group(id=uid, sample=sample, trajectories=list(trajectories))
    elif solution_strs is not None:
        group = group_from_texts(
            solution_strs, group_id=uid, question=question, answer=ground_truth,
            options=options, modality=modality,
        )  # fmt: skip
    else:
        raise ConfigError("score_uid_group needs `trajectories` or `solution_strs`")
    return reward.reward(group)


def score_batch(
    reward: GroupReward | str | Mapping[str, Any],
    uids: Sequence[object],
    solution_strs: Sequence[object],
    ground_truths: Sequence[str | None] | None = None,
    *,
    questions: Sequence[str] | None = None,
) -> tuple[list[float], dict[str, GroupRewardResult]]:
    """Score a flat verl batch: one :meth:`GroupReward.reward` call per uid.

    Returns:
        The rewards in batch order, and each uid's full result (parts, diagnostics).

    Raises:
        ConfigError: When the per-item lists differ in length.
    """
    n = len(uids)
    for name, seq in (("solution_strs", solution_strs), ("ground_truths", ground_truths),
                      ("questions", questions)):  # fmt: skip
        if seq is not None and len(seq) != n:
            raise ConfigError(f"{name} has {len(seq)} items for {n} uids")
    reward = _resolve(reward)
    members: dict[str, list[int]] = {}
    for i, u in enumerate(uids):
        members.setdefault(str(u), []).append(i)
    out = [0.0] * n
    results: dict[str, GroupRewardResult] = {}
    for uid, idx in members.items():
        first = idx[0]
        res = score_uid_group(
            reward,
            [solution_strs[i] for i in idx],
            ground_truths[first] if ground_truths is not None else None,
            uid=uid,
            question=questions[first] if questions is not None else "?",
        )
        for i, r in zip(idx, res.rewards, strict=True):
            out[i] = r
        results[uid] = res
    return out, results


def trl_reward_fn(
    reward: GroupReward | str | Mapping[str, Any],
    *,
    answer_key: str = "answer",
    options_key: str = "options",
    modality_key: str = "modality",
) -> Callable[..., list[float]]:
    """A TRL reward function ``fn(prompts=..., completions=..., **columns) -> list[float]``.

    Completions of the same prompt form one group. Dataset columns arrive as per-completion
    lists in ``kw``: ``answer_key`` (label, may be ``None``), ``options_key`` and ``modality_key``.

    Example:
        >>> fn = trl_reward_fn("majority")
        >>> fn(prompts=["q", "q", "q"], completions=["<answer>yes</answer>", "<answer>yes</answer>",
        ...                                          "<answer>no</answer>"])
        [1.0, 1.0, 0.0]
    """
    group_reward = _resolve(reward)

    def reward_fn(completions: Sequence[object], prompts: Sequence[object] | None = None,
                  **kw: Any) -> list[float]:  # fmt: skip
        n = len(completions)
        keys = [repr(p) for p in prompts] if prompts is not None else ["all"] * n
        if len(keys) != n:
            raise ConfigError(f"got {len(keys)} prompts for {n} completions")
        members: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            members.setdefault(k, []).append(i)
        out = [0.0] * n
        for g, idx in enumerate(members.values()):
            first = idx[0]
            group = group_from_texts(
                [completions[i] for i in idx],
                group_id=f"trl-{g}",
                question=completion_text(prompts[first]) if prompts is not None else "?",
                answer=_text_or_none(_col(kw, answer_key, first)),
                options=_col(kw, options_key, first) or (),
                modality=_col(kw, modality_key, first),
            )
            for i, r in zip(idx, group_reward.reward(group).rewards, strict=True):
                out[i] = r
        return out

    reward_fn.__name__ = f"medgym_{getattr(group_reward, 'name', 'reward')}"
    return reward_fn


def _col(kw: Mapping[str, Any], key: str, i: int) -> Any:
    col = kw.get(key)
    if col is None or isinstance(col, str) or not isinstance(col, Sequence) or i >= len(col):
        return None
    return col[i]


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
