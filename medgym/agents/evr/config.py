"""``EVRConfig``: every knob of Entropy-guided Visual Regrounding, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medgym.errors import ConfigError

__all__ = ["EVRConfig"]

_REGROUND_TEXT = (
    "You seem unsure. Before answering, look again: call a tool to zoom into the region that "
    "decides the answer, then answer inside <answer></answer>."
)


@dataclass(frozen=True, kw_only=True)
class EVRConfig:
    """Entropy-guided Visual Regrounding settings (see ``docs/agents.md`` for the design).

    Attributes:
        mode: ``branch`` (MedVR: fork the uncertain turn into ``num_branches`` resamples),
            ``reground`` (inject a look-again instruction before an uncertain answer) or ``off``.
        threshold: A quantile in (0, 1) of past turn signals (``threshold_kind="quantile"``) or
            an absolute signal value (``"absolute"``).
        threshold_kind: ``quantile`` (default: HF, OpenAI and verl signals live on different
            scales) or ``absolute``.
        warmup: Turn signals to observe before a quantile threshold may fire.
        history: Most recent turn signals a quantile threshold is computed over.
        gamma: Weight of the rise over the rollout's running mean:
            ``signal = level + gamma * (level - running_mean)``; 0 uses the level alone.
        window: Width (tokens) of the moving window the per-token values are averaged over.
        statistic: ``mean`` (the largest windowed mean: robust to one spiky token) or ``max``
            (the largest single token value).
        tokens: ``decision`` (box coordinates of tool calls and the answer span; all tokens when
            a turn has neither) or ``all``.
        source: ``entropy``, ``neglogprob`` or ``auto`` (entropy where the policy reports it,
            else ``-logprob``).
        num_branches: M, branches per firing (the original turn plus M - 1 resamples).
        leaf_budget: Leaves (full trajectories) per question in branch mode: the group size.
        initial_rollouts: Independent roots started per question (more are added while budget
            remains after the tree finishes).
        branch_temperature: Temperature of resampled turns where the policy supports it.
        max_regrounds: k, most look-again injections per episode in reground mode.
        reground_text: Instruction injected in reground mode.
    """

    mode: Literal["branch", "reground", "off"] = "branch"
    threshold: float = 0.8
    threshold_kind: Literal["quantile", "absolute"] = "quantile"
    warmup: int = 16
    history: int = 2048
    gamma: float = 0.5
    window: int = 4
    statistic: Literal["mean", "max"] = "mean"
    tokens: Literal["decision", "all"] = "decision"
    source: Literal["entropy", "neglogprob", "auto"] = "auto"
    num_branches: int = 2
    leaf_budget: int = 8
    initial_rollouts: int = 4
    branch_temperature: float = 1.3
    max_regrounds: int = 1
    reground_text: str = _REGROUND_TEXT

    def __post_init__(self) -> None:
        choices = {
            "mode": ("branch", "reground", "off"),
            "threshold_kind": ("quantile", "absolute"),
            "statistic": ("mean", "max"),
            "tokens": ("decision", "all"),
            "source": ("entropy", "neglogprob", "auto"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        if self.threshold_kind == "quantile" and not 0 < self.threshold < 1:
            raise ConfigError(f"a quantile threshold must be in (0, 1); got {self.threshold}")
        lows = {
            "warmup": 0, "history": 1, "window": 1, "num_branches": 2, "leaf_budget": 1,
            "initial_rollouts": 1, "max_regrounds": 0,
        }  # fmt: skip
        for name, low in lows.items():
            value = getattr(self, name)
            if value < low:
                raise ConfigError(f"{name} must be >= {low}; got {value}")
        if self.initial_rollouts > self.leaf_budget:
            raise ConfigError(
                f"initial_rollouts ({self.initial_rollouts}) must not exceed leaf_budget "
                f"({self.leaf_budget})"
            )
        if self.gamma < 0 or not self.branch_temperature > 0:
            raise ConfigError(
                f"need gamma >= 0 and branch_temperature > 0; got {self.gamma}, "
                f"{self.branch_temperature}"
            )
