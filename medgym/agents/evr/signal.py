"""EVR's uncertainty signal: per-turn scores from per-token entropies, and when they fire.

A turn's score is computed over its *decision tokens* (the tool call's box coordinates and the
answer span): a windowed mean (or the max) of the per-token values, then made relative to the
rollout's running mean by ``gamma``. The threshold is a quantile of recent scores by default,
because entropies from HF logits, truncated OpenAI top-k estimates and -logprobs sit on
different scales.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medgym.agents.evr.config import EVRConfig
from medgym.agents.policy import Generation
from medgym.errors import ConfigError

__all__ = [
    "RolloutSignal",
    "Threshold",
    "TurnSignal",
    "decision_mask",
    "decision_spans",
    "token_values",
    "turn_signal",
    "windowed",
]

_BOX = re.compile(r'"bbox_2d"\s*:\s*\[[^\]]*\]?')
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)


def decision_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the decision parts of a turn: box arrays and answer contents."""
    spans = [m.span() for m in _BOX.finditer(text)]
    spans += [m.span(1) for m in _ANSWER.finditer(text) if m.end(1) > m.start(1)]
    return sorted(spans)


def decision_mask(text: str, pieces: Sequence[str]) -> list[bool]:
    """Per token (given as its text piece), whether it overlaps a decision span of ``text``.

    Pieces are matched against ``text`` by running offset; when they do not concatenate to
    ``text`` (lossy decoding), the offsets are clipped, which can only shift the mask.
    """
    spans = decision_spans(text)
    mask, pos = [], 0
    for piece in pieces:
        start, pos = pos, pos + len(piece)
        mask.append(any(a < pos and start < b for a, b in spans))
    return mask


def token_values(gen: Generation, source: str = "auto") -> list[float] | None:
    """Per-token uncertainty values of a generation: entropies or ``-logprob`` (``None``: none)."""
    if source in ("entropy", "auto") and gen.entropies:
        return [float(v) for v in gen.entropies]
    if source in ("neglogprob", "auto") and gen.logprobs:
        return [-float(v) for v in gen.logprobs]
    return None


def windowed(values: Sequence[float], window: int, statistic: str) -> float:
    """Largest moving-window mean (``mean``) or largest value (``max``) of ``values``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ConfigError("windowed() needs at least one value")
    if statistic == "max":
        return float(arr.max())
    w = min(window, arr.size)
    csum = np.concatenate([[0.0], np.cumsum(arr)])
    return float(((csum[w:] - csum[:-w]) / w).max())


@dataclass(frozen=True)
class TurnSignal:
    """The score of one generated turn.

    Attributes:
        level: Windowed statistic over the counted tokens.
        baseline: Running mean of the rollout's earlier counted tokens (``level`` on turn one).
        value: ``level + gamma * (level - baseline)``: what is compared with the threshold.
        tokens: How many tokens were counted.
    """

    level: float
    baseline: float
    value: float
    tokens: int


class RolloutSignal:
    """Running state of one rollout: the mean of its counted token values so far."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def copy(self) -> RolloutSignal:
        """An independent copy (for a forked rollout)."""
        new = RolloutSignal()
        new.total, new.count = self.total, self.count
        return new

    def mean(self) -> float | None:
        """Mean so far, ``None`` before any token."""
        return self.total / self.count if self.count else None


def turn_signal(
    gen: Generation,
    config: EVRConfig,
    rollout: RolloutSignal,
    pieces: Sequence[str] | None = None,
) -> TurnSignal | None:
    """Score a generated turn and update the rollout's running mean.

    Args:
        gen: The generation (needs entropies or logprobs).
        config: Which tokens and statistic, and ``gamma``.
        rollout: The rollout's running state (updated in place).
        pieces: Each token's text, to locate decision tokens (default: ``gen.pieces`` where
            the generation carries them); without pieces all tokens count.

    Returns:
        The signal, or ``None`` when the generation carries no per-token values.
    """
    values = token_values(gen, config.source)
    if pieces is None:
        pieces = getattr(gen, "pieces", None)
    if not values:
        return None
    counted = values
    if config.tokens == "decision" and pieces is not None and len(pieces) == len(values):
        mask = decision_mask(gen.text, pieces)
        if any(mask):
            counted = [v for v, m in zip(values, mask, strict=True) if m]
    level = windowed(counted, config.window, config.statistic)
    prior = rollout.mean()
    baseline = level if prior is None else prior
    rollout.total += float(np.sum(counted))
    rollout.count += len(counted)
    return TurnSignal(level, baseline, level + config.gamma * (level - baseline), len(counted))


class Threshold:
    """Decides whether a turn signal fires; quantile thresholds learn from recent signals.

    A signal is compared with the threshold computed *before* it is added to the history, so a
    turn never raises its own bar.
    """

    def __init__(self, config: EVRConfig) -> None:
        self.config = config
        self.values: deque[float] = deque(maxlen=config.history)

    def current(self) -> float | None:
        """The threshold now (``None`` while a quantile threshold is warming up)."""
        if self.config.threshold_kind == "absolute":
            return self.config.threshold
        if len(self.values) < max(1, self.config.warmup):
            return None
        return float(np.quantile(np.asarray(self.values), self.config.threshold))

    def fires(self, signal: TurnSignal | None) -> bool:
        """Whether ``signal`` crosses the threshold (strictly above); records it."""
        if signal is None:
            return False
        bar = self.current()
        self.values.append(signal.value)
        return bar is not None and signal.value > bar
