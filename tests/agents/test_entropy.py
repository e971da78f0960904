from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.agents.entropy import truncated_entropy
from medgym.errors import ConfigError


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@given(
    st.lists(st.floats(0.0, 10.0), min_size=2, max_size=40),
    st.integers(1, 40),
)
def test_lumped_estimate_is_a_lower_bound_within_documented_bias(weights, k) -> None:
    w = np.asarray(weights) + 1e-3
    p = np.sort(w / w.sum())[::-1]
    k = min(k, p.size)
    est = truncated_entropy(np.log(p[:k]).tolist())
    true = _entropy(p)
    r = max(0.0, 1.0 - p[:k].sum())
    assert est <= true + 1e-9
    bias = r * math.log(p.size - k) if p.size > k else 0.0
    assert true - est <= bias + 1e-9


@given(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=10))
def test_renormalised_estimate_is_at_most_log_k(probs) -> None:
    lps = [math.log(p / (sum(probs) + 1.0)) for p in probs]
    assert truncated_entropy(lps, tail="renorm") <= math.log(len(lps)) + 1e-9


@pytest.mark.parametrize(
    ("lps", "expected"),
    [([], 0.0), ([0.0], 0.0), ([math.log(0.5), math.log(0.5)], math.log(2))],
    ids=["empty", "certain", "coin"],
)
def test_exact_when_nothing_is_missing(lps, expected) -> None:
    assert truncated_entropy(lps) == pytest.approx(expected)
    assert truncated_entropy(lps, tail="renorm") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("lps", "tail"),
    [([0.5], "lump"), ([float("nan")], "lump"), ([-1.0], "drop")],
    ids=["positive-logprob", "nan", "unknown-tail"],
)
def test_rejects_bad_input(lps, tail) -> None:
    with pytest.raises(ConfigError):
        truncated_entropy(lps, tail=tail)


def test_entropy_from_logits_matches_numpy_and_handles_masked_tokens() -> None:
    torch = pytest.importorskip("torch")
    from medgym.agents.entropy import entropy_from_logits, logprobs_from_logits

    z = torch.randn(3, 7, generator=torch.Generator().manual_seed(0))
    z[1, 2] = -math.inf  # a masked token has probability 0, not NaN
    for tau in (1.0, 0.5, 2.0):
        zz = (z / tau).double().numpy()
        p = np.exp(zz - zz.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        ent = [_entropy(row) for row in p]
        np.testing.assert_allclose(entropy_from_logits(z, tau).numpy(), ent, atol=1e-5)
        ids = torch.tensor([0, 3, 6])
        np.testing.assert_allclose(
            logprobs_from_logits(z, ids, tau).numpy(), np.log(p[[0, 1, 2], [0, 3, 6]]), atol=1e-5
        )
    with pytest.raises(ConfigError):
        entropy_from_logits(z, 0.0)
