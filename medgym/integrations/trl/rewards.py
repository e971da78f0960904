"""A TRL reward function that scores whole groups of medgym sessions.

TRL passes the rollouts' environments to every reward function (``environments=``). The
function applies each rollout's final answer, collects the sessions' trajectories into groups of
``num_generations`` consecutive rollouts (TRL repeats each prompt that many times in a row),
scores each group with a :mod:`medgym.rewards` group reward (label-free ones included) and logs
the parts, the tool-call rate and the pseudo-label confidence.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError
from medgym.integrations.scoring import resolve_group_reward, score_group
from medgym.integrations.trl.environment import MedGymToolEnv, finish_episode
from medgym.integrations.trl.metrics import MetricsSink
from medgym.rewards.group import GroupReward

__all__ = ["SessionGroupReward", "check_whole_groups"]

logger = logging.getLogger(__name__)


def check_whole_groups(sessions: Sequence[EpisodeSession], num_generations: int) -> None:
    """Raise unless ``sessions`` is whole groups: consecutive runs of one sample, G long.

    Rewards run per process; a group split across processes would be scored on a fraction of
    its rollouts (a wrong pseudo label, a wrong consensus), so this is checked every call.

    Raises:
        ConfigError: If the batch size is not a multiple of ``num_generations`` or a run of
            ``num_generations`` rollouts mixes samples.
    """
    n = len(sessions)
    if num_generations < 1 or n % num_generations:
        raise ConfigError(
            f"each process must hold whole groups: got {n} rollouts for num_generations="
            f"{num_generations}; make per_device_train_batch_size * steps_per_generation a "
            "multiple of num_generations"
        )
    for start in range(0, n, num_generations):
        ids = {s.sample.id for s in sessions[start : start + num_generations]}
        if len(ids) != 1:
            raise ConfigError(
                f"rollouts {start}..{start + num_generations - 1} should share one sample; got "
                f"{sorted(ids)} (is the sampler repeating each prompt num_generations times?)"
            )


def _pseudo_label(diagnostics: dict[str, Any]) -> str | None:
    """The pseudo label a label-free reward chose for a group (``None`` when it used a label)."""
    for d in (diagnostics, diagnostics.get("accuracy")):
        if isinstance(d, dict) and isinstance(d.get("pseudo_label"), str):
            return str(d["pseudo_label"])
    return None


class SessionGroupReward:
    """``fn(completions, environments, **kw) -> list[float]`` for ``GRPOTrainer(reward_funcs=)``.

    Each group of sessions is scored by :func:`~medgym.integrations.scoring.score_group`, as
    verl's reward manager scores a uid: with a group reward, a rollout's reward is the group's
    value minus the session's penalties (the gym env's format, tool and budget penalties, as
    the session config sets them: scale them there); with ``reward="episode"`` it is the gym
    env's own episode reward.

    Args:
        num_generations: Rollouts per group (GRPO's G).
        reward: Group reward: a registry spec (``"label_free"``, ``{"hsr": 1.0}``), an object,
            or ``"episode"``/``None`` for the session's own score.
        reward_options: Options for a named reward (e.g. ``{"embedder": "hashing"}``).
        sink: Where to write one metrics record per call (JSONL); optional.
    """

    def __init__(
        self,
        *,
        num_generations: int,
        reward: str | dict[str, Any] | GroupReward | None = "label_free",
        reward_options: dict[str, Any] | None = None,
        sink: MetricsSink | None = None,
    ) -> None:
        if num_generations < 2:
            raise ConfigError(f"GRPO needs num_generations >= 2; got {num_generations}")
        self.num_generations = num_generations
        self.group_reward = resolve_group_reward(reward, **(reward_options or {}))
        self.sink = sink
        self.history: list[dict[str, Any]] = []
        self.__name__ = f"medgym_{getattr(self.group_reward, 'name', 'episode')}"

    def __call__(
        self,
        completions: list[Any],
        environments: list[MedGymToolEnv] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        trainer_state: Any = None,
        **_: Any,
    ) -> list[float]:
        """Score a batch; see the class docstring."""
        if environments is None:
            raise ConfigError(
                "SessionGroupReward reads the sessions through TRL's `environments`; pass "
                "environment_factory=make_environment_factory(...) to GRPOTrainer"
            )
        if len(environments) != len(completions):
            raise ConfigError(
                f"expected one environment per completion; got {len(environments)} for "
                f"{len(completions)} completions"
            )
        sessions = [finish_episode(e, c) for e, c in zip(environments, completions, strict=True)]
        check_whole_groups(sessions, self.num_generations)
        rewards, record = self.score(sessions)
        record["step"] = int(getattr(trainer_state, "global_step", len(self.history)))
        self.history.append(record)
        if log_metric is not None:
            for key, value in record.items():
                if key not in ("step", "rewards") and isinstance(value, float):
                    log_metric(f"medgym/{key}", value)
        if self.sink is not None:
            self.sink.write(record)
        return rewards

    def score(self, sessions: Sequence[EpisodeSession]) -> tuple[list[float], dict[str, Any]]:
        """Rewards of whole groups of finished sessions, and a metrics record of the batch."""
        g = self.num_generations
        rewards: list[float] = []
        parts: dict[str, list[float]] = {}
        rollout_parts: list[dict[str, float]] = []
        confidences: list[float] = []
        skipped = 0
        group_spread: list[float] = []
        pseudo: list[str | None] = []
        for start in range(0, len(sessions), g):
            chunk = sessions[start : start + g]
            gid = uuid.uuid4().hex[:12]
            trajs = [s.trajectory().model_copy(update={"group_id": gid}) for s in chunk]
            scored = score_group(
                self.group_reward, chunk[0].sample, trajs, chunk[0].config, group_id=gid
            )
            rewards.extend(scored.rewards)
            group_spread.append(max(scored.rewards) - min(scored.rewards))
            for name, vals in scored.parts.items():
                parts.setdefault(name, []).extend(vals)
            for j, e in enumerate(scored.episodes):
                rollout_parts.append(
                    {**e.parts(), **{f"group/{k}": v[j] for k, v in scored.parts.items()}}
                )
            diagnostics = scored.diagnostics
            conf = diagnostics.get("confidence")
            if isinstance(conf, (int, float)):
                confidences.append(float(conf))
            pseudo.append(_pseudo_label(diagnostics))
            skipped += bool(diagnostics.get("skipped"))
        n = len(sessions)
        record: dict[str, Any] = {
            "reward": sum(rewards) / n,
            "reward_std_within_group": sum(group_spread) / len(group_spread),
            "tool_call_rate": sum(s.metrics["tool_calls"] > 0 for s in sessions) / n,
            "tool_calls_per_rollout": sum(s.metrics["tool_calls"] for s in sessions) / n,
            "answer_rate": sum(s.terminated for s in sessions) / n,
            "skipped_groups": float(skipped),
            "rewards": list(rewards),
            # per rollout: the episode score's parts and the group reward's (group/...)
            "rollout_parts": rollout_parts,
            # per group, for analysis only (e.g. pseudo-label accuracy against hidden labels)
            "sample_ids": [sessions[i].sample.id for i in range(0, n, g)],
            "pseudo_labels": pseudo,
        }
        for name, vals in parts.items():
            record[f"part/{name}"] = sum(vals) / len(vals)
        if confidences:
            record["pseudo_label_confidence"] = sum(confidences) / len(confidences)
        return rewards, record
