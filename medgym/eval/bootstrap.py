"""Cluster bootstrap confidence intervals: samples are resampled, their rollouts travel along."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medgym.errors import ConfigError

__all__ = ["Estimate", "bootstrap_ratio"]


@dataclass(frozen=True)
class Estimate:
    """A headline number with its percentile bootstrap interval.

    Attributes:
        value: The point estimate (``None`` when no sample contributes).
        low: Lower end of the interval.
        high: Upper end of the interval.
        n: Samples (clusters) that contributed.
    """

    value: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly form."""
        return asdict(self)


def bootstrap_ratio(
    sums: np.ndarray | list[float],
    counts: np.ndarray | list[float],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """``sum(sums) / sum(counts)`` with a cluster bootstrap interval.

    Each sample contributes a sum of per-rollout values and a count of rollouts; samples with
    count 0 are left out. Resampling whole samples keeps the correlation of a sample's rollouts.

    Args:
        sums: Per-sample sum of the metric's values.
        counts: Per-sample number of values (same length).
        resamples: Bootstrap resamples (0: no interval).
        level: Coverage of the interval, in (0, 1).
        seed: Seed of the resampling.

    Example:
        >>> e = bootstrap_ratio([1, 0, 1, 1], [1, 1, 1, 1], resamples=200)
        >>> e.value, e.low <= e.value <= e.high
        (0.75, True)
    """
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if s.shape != c.shape or s.ndim != 1:
        raise ConfigError(f"sums and counts must be 1-D of equal length; got {s.shape}, {c.shape}")
    if not 0 < level < 1 or resamples < 0:
        raise ConfigError(f"need 0 < level < 1 and resamples >= 0; got {level}, {resamples}")
    keep = c > 0
    s, c = s[keep], c[keep]
    n = int(s.size)
    if n == 0:
        return Estimate(None, None, None, 0)
    value = float(s.sum() / c.sum())
    if resamples == 0 or n == 1:
        return Estimate(value, value, value, n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    stats = s[idx].sum(axis=1) / c[idx].sum(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), n)
