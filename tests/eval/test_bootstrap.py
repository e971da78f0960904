from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.errors import ConfigError
from medgym.eval.bootstrap import bootstrap_ratio


def test_ratio_of_sums_weights_samples_by_rollouts() -> None:
    # sample 1: 2 of 2 right; sample 2: 0 of 1 right -> 2 / 3, not the mean of means (0.5)
    est = bootstrap_ratio([2, 0], [2, 1], resamples=100)
    assert est.value == pytest.approx(2 / 3)
    assert est.n == 2


def test_samples_without_values_are_left_out() -> None:
    est = bootstrap_ratio([1, 0, 0], [1, 0, 1], resamples=100)
    assert est.n == 2 and est.value == 0.5


def test_no_samples_gives_none() -> None:
    est = bootstrap_ratio([], [], resamples=100)
    assert (est.value, est.low, est.high, est.n) == (None, None, None, 0)


def test_interval_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2, 20).astype(float)
    large = rng.integers(0, 2, 2000).astype(float)
    e_small = bootstrap_ratio(small, np.ones_like(small), resamples=300)
    e_large = bootstrap_ratio(large, np.ones_like(large), resamples=300)
    assert e_large.high - e_large.low < e_small.high - e_small.low


def test_seed_makes_it_reproducible() -> None:
    a = bootstrap_ratio([1, 0, 1, 1, 0], [1] * 5, resamples=200, seed=3)
    b = bootstrap_ratio([1, 0, 1, 1, 0], [1] * 5, resamples=200, seed=3)
    assert a == b


@pytest.mark.parametrize(
    ("sums", "counts", "kw"),
    [
        ([1, 2], [1], {}),
        ([1], [1], {"level": 1.0}),
        ([1], [1], {"resamples": -1}),
    ],
    ids=["length-mismatch", "level-1", "negative-resamples"],
)
def test_bad_arguments_raise(sums: list[float], counts: list[float], kw: dict) -> None:
    with pytest.raises(ConfigError):
        bootstrap_ratio(sums, counts, **kw)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 4)), min_size=1, max_size=30))
def test_interval_contains_estimate_and_stays_in_range(pairs: list[tuple[int, int]]) -> None:
    sums = [min(s, c) for s, c in pairs]
    counts = [c for _, c in pairs]
    est = bootstrap_ratio(sums, counts, resamples=100)
    assert 0.0 <= est.low <= est.value + 1e-12 <= est.high + 2e-12 <= 1.0 + 3e-12
