"""Group rewards: the protocol, the result type, a registry by name and weighted composites.

A group reward scores the n rollouts of one sample together (a GRPO group), which is what lets
rollouts supervise each other when the sample has no label.

Example:
    >>> from medgym.rewards.group import make_group_reward
    >>> r = make_group_reward({"majority": 1.0, "format": 0.1})
    >>> r.name
    'composite'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from medgym.core.trajectory import Group
from medgym.errors import ConfigError, did_you_mean

__all__ = [
    "GROUP_REWARDS",
    "CompositeReward",
    "GroupReward",
    "GroupRewardResult",
    "make_group_reward",
    "register_group_reward",
]


@dataclass(frozen=True)
class GroupRewardResult:
    """What a group reward returns.

    Attributes:
        rewards: One finite float per trajectory, in the group's order.
        parts: Named per-trajectory scores that make up the reward (each of the same length).
        diagnostics: Group-level facts: pseudo label, confidence, consensus boxes, skipped...
    """

    rewards: list[float]
    parts: dict[str, list[float]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.rewards)
        for name, values in self.parts.items():
            if len(values) != n:
                raise ConfigError(f"part `{name}` has {len(values)} values for {n} rewards")
        bad = [v for v in self.rewards if not math.isfinite(v)]
        if bad:
            raise ConfigError(f"group rewards must be finite; got {bad[:3]}")


@runtime_checkable
class GroupReward(Protocol):
    """Scores a whole group of trajectories at once."""

    name: str

    def reward(self, group: Group) -> GroupRewardResult:
        """Score every trajectory of ``group``."""


GROUP_REWARDS: dict[str, Callable[..., GroupReward]] = {}
"""Registry: name -> factory taking keyword options."""


def register_group_reward(
    name: str,
) -> Callable[[Callable[..., GroupReward]], Callable[..., GroupReward]]:
    """Class decorator registering a group reward factory under ``name``."""

    def deco(factory: Callable[..., GroupReward]) -> Callable[..., GroupReward]:
        if name in GROUP_REWARDS and GROUP_REWARDS[name] is not factory:
            raise ConfigError(f"group reward `{name}` is already registered")
        GROUP_REWARDS[name] = factory
        return factory

    return deco


def _lookup(name: str) -> Callable[..., GroupReward]:
    _ensure_builtins()
    if name not in GROUP_REWARDS:
        raise ConfigError(
            f"unknown group reward `{name}`{did_you_mean(name, GROUP_REWARDS)}; "
            f"known: {', '.join(sorted(GROUP_REWARDS))}"
        )
    return GROUP_REWARDS[name]


def _ensure_builtins() -> None:
    # Importing the modules runs their @register_group_reward decorators.
    from medgym.rewards import cca, fpl, hsr, majority, persample, presets  # noqa: F401


class CompositeReward:
    """A weighted sum of group rewards: ``reward = sum_k w_k * r_k``.

    Parts are named ``<component>`` (its total) and ``<component>.<part>`` (its own parts);
    diagnostics are nested under each component's name.

    Args:
        components: ``{name: (weight, reward)}``.
        min_confidence: Skip the group (all rewards 0, ``diagnostics["skipped"] = True``) when a
            component reports ``diagnostics["confidence"]`` below this.
    """

    name = "composite"

    def __init__(
        self, components: Mapping[str, tuple[float, GroupReward]], *, min_confidence: float = 0.0
    ) -> None:
        if not components:
            raise ConfigError("a composite reward needs at least one component")
        for key, (w, _) in components.items():
            if not math.isfinite(w):
                raise ConfigError(f"weight of `{key}` must be finite; got {w}")
        self.components = dict(components)
        self.min_confidence = min_confidence

    def reward(self, group: Group) -> GroupRewardResult:
        """Score ``group`` with every component and add them up with their weights."""
        n = len(group)
        total = [0.0] * n
        parts: dict[str, list[float]] = {}
        diagnostics: dict[str, Any] = {"skipped": False}
        confidences: list[float] = []
        for key, (weight, comp) in self.components.items():
            res = comp.reward(group)
            if len(res.rewards) != n:
                raise ConfigError(f"`{key}` returned {len(res.rewards)} rewards for {n} rollouts")
            parts[key] = list(res.rewards)
            for p, values in res.parts.items():
                parts[f"{key}.{p}"] = list(values)
            diagnostics[key] = res.diagnostics
            if "confidence" in res.diagnostics:
                confidences.append(float(res.diagnostics["confidence"]))
            total = [t + weight * r for t, r in zip(total, res.rewards, strict=True)]
        if confidences:
            diagnostics["confidence"] = min(confidences)
            if min(confidences) < self.min_confidence:
                diagnostics["skipped"] = True
                total = [0.0] * n
        return GroupRewardResult(total, parts, diagnostics)


def make_group_reward(
    spec: str | Mapping[str, Any] | Sequence[Any],
    **options: Any,
) -> GroupReward:
    """Build a group reward from a name or a config.

    Args:
        spec: A registry name (``"majority"``), or weights ``{"majority": 1.0, "cca": 0.5}``, or
            ``{"weights": {...}, "options": {"cca": {...}}, "min_confidence": 0.3}``.
        **options: Keyword options for a single named reward.

    Raises:
        ConfigError: For unknown names or malformed configs.
    """
    if isinstance(spec, str):
        return _lookup(spec)(**options)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"expected a reward name or a mapping of weights; got {spec!r}")
    if "weights" in spec:
        weights = spec["weights"]
        per = spec.get("options", {}) or {}
        min_conf = float(spec.get("min_confidence", 0.0))
    else:
        weights, per, min_conf = spec, {}, 0.0
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(f"`weights` must be a non-empty mapping name -> weight; got {weights!r}")
    unknown_opts = set(per) - set(weights)
    if unknown_opts:
        raise ConfigError(f"options given for rewards not in weights: {sorted(unknown_opts)}")
    comps: dict[str, tuple[float, GroupReward]] = {}
    for key, w in weights.items():
        try:
            weight = float(w)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"weight of `{key}` must be a number; got {w!r}") from e
        comps[key] = (weight, _lookup(key)(**dict(per.get(key, {}))))
    return CompositeReward(comps, min_confidence=min_conf)
