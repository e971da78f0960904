"""Where a group reward meets the episode score: one function for TRL, verl and LockstepGRPO.

Each rollout of a group is scored by :func:`~medgym.envs.scoring.score_episode` (accuracy against
the label, format, penalties). Without a group reward, a rollout's reward is that score's
``total``, the gym env's reward. With one (majority, FPL, HSR, CCA, the presets), the group's
value replaces ``accuracy + format_weight * format`` and the episode's penalties are subtracted
(:func:`~medgym.envs.scoring.group_total`), in every trainer alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medgym.core.sample import Sample
from medgym.core.trajectory import Group, Trajectory
from medgym.envs.config import SessionConfig
from medgym.envs.scoring import EpisodeScore, group_total, score_episode
from medgym.errors import ConfigError
from medgym.rewards.group import GroupReward, GroupRewardResult, make_group_reward

__all__ = ["GroupScore", "resolve_group_reward", "score_group"]

RewardSpec = GroupReward | str | Mapping[str, Any] | None
"""A group reward object, a registry spec (``"label_free"``, ``{"hsr": 1.0}``), or ``None``
for the episode's own score."""


@dataclass
class GroupScore:
    """The rewards of one group's rollouts, with their parts.

    Attributes:
        rewards: One reward per rollout, in order.
        episodes: Each rollout's episode score (accuracy, format, penalty...).
        parts: Per-rollout values by part: the group reward's parts (or the episode's, without
            a group reward) and ``penalty``.
        result: The group reward's full result (diagnostics, pseudo label), if one was used.
    """

    rewards: list[float]
    episodes: list[EpisodeScore]
    parts: dict[str, list[float]] = field(default_factory=dict)
    result: GroupRewardResult | None = None

    @property
    def diagnostics(self) -> dict[str, Any]:
        """The group reward's diagnostics (empty without one)."""
        return dict(self.result.diagnostics) if self.result is not None else {}


def resolve_group_reward(reward: RewardSpec, **options: Any) -> GroupReward | None:
    """A group reward from a spec (``None`` and ``"episode"`` mean the episode score)."""
    if reward is None or reward == "episode":
        return None
    if isinstance(reward, (str, Mapping)):
        return make_group_reward(reward, **options)
    if not hasattr(reward, "reward"):
        raise ConfigError(
            f"reward must be a group reward, a registry spec or None; got {type(reward).__name__}"
        )
    return reward


def score_group(
    reward: GroupReward | None,
    sample: Sample,
    trajectories: Sequence[Trajectory],
    config: SessionConfig | None = None,
    *,
    group_id: str = "g",
) -> GroupScore:
    """Score the rollouts of one sample together.

    Args:
        reward: The group reward, or ``None`` for each episode's own score.
        sample: The sample they answered (its label is only read by supervised rewards).
        trajectories: The rollouts, as recorded by the episode session.
        config: The session config they ran under (``format_weight``); default config if none.
        group_id: The group's id (verl's uid).

    Returns:
        The rewards and their parts.
    """
    cfg = config or SessionConfig()
    episodes = [score_episode(t, sample, cfg) for t in trajectories]
    if reward is None:
        parts = (
            {k: [e.parts()[k] for e in episodes] for k in episodes[0].parts()} if episodes else {}
        )
        return GroupScore([e.total for e in episodes], episodes, parts)
    result = reward.reward(Group(id=group_id, sample=sample, trajectories=list(trajectories)))
    rewards = [group_total(v, e) for v, e in zip(result.rewards, episodes, strict=True)]
    parts = {k: [float(x) for x in v] for k, v in result.parts.items()}
    parts["penalty"] = [e.penalty for e in episodes]
    return GroupScore(rewards, episodes, parts, result)
