"""Majority-vote reward (TTRL): 1 for answers equal to the group's most frequent answer."""

from __future__ import annotations

from medgym.core.trajectory import Group
from medgym.errors import ConfigError
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.pseudo import group_answers, majority_label

__all__ = ["MajorityVoteReward"]


@register_group_reward("majority")
class MajorityVoteReward:
    """1.0 for a rollout whose normalised answer equals the majority answer, else 0.0.

    Args:
        min_confidence: Below this share of agreeing rollouts the group is skipped: every reward
            is 0 (GRPO then learns nothing from it) and ``diagnostics["skipped"]`` is ``True``.

    Example:
        >>> from medgym.rewards.testing import make_group
        >>> MajorityVoteReward().reward(make_group(["yes", "Yes.", "no"])).rewards
        [1.0, 1.0, 0.0]
    """

    name = "majority"

    def __init__(self, min_confidence: float = 0.0) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ConfigError(f"min_confidence must be in [0, 1]; got {min_confidence}")
        self.min_confidence = min_confidence

    def reward(self, group: Group) -> GroupRewardResult:
        """Score ``group`` by agreement with its majority answer."""
        answers = group_answers(group)
        label = majority_label(answers)
        agree = [float(bool(label.norm) and a == label.norm) for a in answers.norm]
        skipped = label.confidence < self.min_confidence
        rewards = [0.0] * len(agree) if skipped else list(agree)
        return GroupRewardResult(
            rewards,
            {"agree": agree},
            {
                "pseudo_label": label.text,
                "pseudo_label_norm": label.norm,
                "confidence": label.confidence,
                "support": label.support,
                "skipped": skipped,
            },
        )
