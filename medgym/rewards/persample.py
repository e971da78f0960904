"""Per-sample scores lifted to group rewards, so composites can mix them with group rewards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from medgym.core.trajectory import Group, Trajectory
from medgym.errors import ConfigError
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.scoring import (
    clean_answer,
    closed_match,
    format_score,
    modality_score,
    score_answer,
    token_f1,
    token_recall,
)

__all__ = [
    "AccuracyReward",
    "FormatReward",
    "ModalityReward",
    "ToolUseReward",
    "final_text",
    "trajectory_format",
]


def final_text(t: Trajectory) -> str:
    """The model's text of the last generated (not injected) turn, ``""`` when there is none."""
    for turn in reversed(t.turns):
        if not turn.injected and turn.action:
            return turn.action
    return ""


def trajectory_format(t: Trajectory, *, require_modality: bool = False) -> float:
    """1.0 for an answered episode without format errors whose last turn is well formed.

    Well formed: ``<think>..</think><answer>..</answer>``, with a modality tag in front when
    ``require_modality``.
    """
    if not t.terminated or t.metrics.get("format_errors", 0.0) > 0:
        return 0.0
    return format_score(final_text(t), require_modality=require_modality)


def _per_rollout(name: str, values: list[float], **diag: object) -> GroupRewardResult:
    return GroupRewardResult(values, {name: list(values)}, {"skipped": False, **diag})


_ACCURACY: dict[str, Callable[[object, str, tuple[str, ...]], float]] = {
    "exact": lambda a, ref, opts: closed_match(clean_answer(a), ref, opts),
    "recall": lambda a, ref, opts: token_recall(clean_answer(a), ref),
    "f1": lambda a, ref, opts: token_f1(clean_answer(a), ref),
}


@register_group_reward("accuracy")
class AccuracyReward:
    """Supervised accuracy against the sample's label (0 for unlabelled samples).

    Args:
        metric: ``"auto"`` (closed: exact match; open: exact else token recall, as
            :func:`score_answer`), ``"exact"``, ``"recall"`` or ``"f1"``.
    """

    name = "accuracy"

    def __init__(self, metric: Literal["auto", "exact", "recall", "f1"] = "auto") -> None:
        if metric != "auto" and metric not in _ACCURACY:
            raise ConfigError(f"metric must be auto, exact, recall or f1; got {metric!r}")
        self.metric = metric

    def reward(self, group: Group) -> GroupRewardResult:
        """Score each rollout against the label."""
        s = group.sample
        if s.answer is None:
            return _per_rollout("accuracy", [0.0] * len(group), reason="no label")
        if self.metric == "auto":
            values = [
                score_answer(clean_answer(a), s.answer, answer_type=s.answer_type,
                             options=s.options)
                for a in group.answers
            ]  # fmt: skip
        else:
            fn = _ACCURACY[self.metric]
            values = [fn(a, s.answer, s.options) for a in group.answers]
        return _per_rollout("accuracy", values)


@register_group_reward("format")
class FormatReward:
    """1.0 per rollout with a well-formed final turn (see :func:`trajectory_format`).

    Args:
        require_modality: Also require the MediX-R1 ``<modality>`` tag.
    """

    name = "format"

    def __init__(self, require_modality: bool = False) -> None:
        self.require_modality = require_modality

    def reward(self, group: Group) -> GroupRewardResult:
        """Score each rollout's format."""
        need = self.require_modality
        return _per_rollout(
            "format", [trajectory_format(t, require_modality=need) for t in group.trajectories]
        )


@register_group_reward("modality")
class ModalityReward:
    """MediX-R1's modality reward: the ``<modality>`` tag names the sample's modality."""

    name = "modality"

    def reward(self, group: Group) -> GroupRewardResult:
        """Score each rollout's modality tag (0 when the sample's modality is unknown)."""
        m = group.sample.modality
        return _per_rollout(
            "modality", [modality_score(final_text(t), m) for t in group.trajectories]
        )


@register_group_reward("tool_use")
class ToolUseReward:
    """1.0 per rollout with at least one executed call that returned an image (DeepEyes)."""

    name = "tool_use"

    def reward(self, group: Group) -> GroupRewardResult:
        """Score whether each rollout got an image back from a tool."""
        return _per_rollout("tool_use", [float(used_image_tool(t)) for t in group.trajectories])


def used_image_tool(t: Trajectory) -> bool:
    """Whether any call of ``t`` ran and returned an image."""
    return any(c.ok and c.view_index is not None for c in t.tool_calls)
