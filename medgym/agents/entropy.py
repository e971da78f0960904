"""Token entropy, shared by every policy: exact from logits, estimated from top-k logprobs.

``H_t = -sum_j p_tj log p_tj`` with ``p_t = softmax(z_t / tau)``: the entropy of the distribution
the token was sampled from at temperature ``tau`` (before top-k/top-p truncation, which would
make it depend on sampling knobs rather than on the model).

An OpenAI-compatible endpoint returns only the ``k`` most likely tokens' logprobs. Then the
entropy is estimated from them; see :func:`truncated_entropy` for the estimators and their bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from medgym.agents.policy import Generation
from medgym.errors import ConfigError

__all__ = [
    "TailMode",
    "TokenGeneration",
    "entropy_from_logits",
    "logprobs_from_logits",
    "truncated_entropy",
]

TailMode = Literal["lump", "renorm"]


def _check_tau(temperature: float) -> None:
    if not temperature > 0 or not math.isfinite(temperature):
        raise ConfigError(f"temperature must be a positive finite number; got {temperature}")


def entropy_from_logits(logits: Any, temperature: float = 1.0) -> Any:
    """Exact entropy (nats) of ``softmax(logits / temperature)`` over the last axis.

    Args:
        logits: A torch tensor ``(..., vocab)``; ``-inf`` entries (masked tokens) count as
            probability zero.
        temperature: Sampling temperature ``tau > 0``.

    Returns:
        A float32 tensor of shape ``logits.shape[:-1]``.
    """
    import torch

    _check_tau(temperature)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def logprobs_from_logits(logits: Any, token_ids: Any, temperature: float = 1.0) -> Any:
    """Log-probability of ``token_ids`` under ``softmax(logits / temperature)``.

    Args:
        logits: Tensor ``(n, vocab)``.
        token_ids: Long tensor ``(n,)``.
        temperature: Sampling temperature.
    """
    import torch

    _check_tau(temperature)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)


def truncated_entropy(top_logprobs: Sequence[float], *, tail: TailMode = "lump") -> float:
    """Estimate a token's entropy from the logprobs of its ``k`` most likely tokens.

    With top-k probabilities ``p_1..p_k`` and missing tail mass ``r = 1 - sum p_i``:

    - ``lump`` (default): ``-sum p_i log p_i - r log r``, the tail treated as one token. This is
      a lower bound of the true entropy: the tail spread over many tokens has entropy of at least
      ``-r log r``. The bias is at most ``r log(V - k)`` for vocabulary size ``V`` and vanishes
      as ``r -> 0`` (peaked distributions, where most decision tokens sit).
    - ``renorm``: the entropy of the top-k renormalised to sum to 1. Neither a lower nor an upper
      bound in general; it ignores the tail and is at most ``log k``.

    Both are monotone enough in the true entropy to rank tokens within one model, which is all
    EVR's quantile thresholds need; compare values across backends only through quantiles.

    Args:
        top_logprobs: Natural-log probabilities of the top tokens (any order, ``k >= 1``).
        tail: Estimator, ``lump`` or ``renorm``.

    Returns:
        The estimate in nats (``0.0`` for an empty list).

    Raises:
        ConfigError: For an unknown ``tail`` or a logprob above 0 / NaN.
    """
    if tail not in ("lump", "renorm"):
        raise ConfigError(f"tail must be 'lump' or 'renorm'; got {tail!r}")
    probs = []
    for lp in top_logprobs:
        lp = float(lp)
        if math.isnan(lp) or lp > 1e-6:
            raise ConfigError(f"logprobs must be <= 0 and not NaN; got {lp}")
        probs.append(math.exp(min(lp, 0.0)))
    if not probs:
        return 0.0
    total = sum(probs)
    if tail == "renorm":
        return -sum(p / total * math.log(p / total) for p in probs if p > 0)
    h = -sum(p * math.log(p) for p in probs if p > 0)
    r = 1.0 - total
    if r > 1e-12:
        h -= r * math.log(r)
    return h


@dataclass(frozen=True)
class TokenGeneration(Generation):
    """A :class:`Generation` that also carries each token's text piece.

    EVR maps decision spans of the text (box coordinates, the answer) to tokens through the
    pieces; policies with a tokenizer or with per-token logprobs fill them in.

    Attributes:
        pieces: Decoded text of each generated token, in order.
    """

    pieces: list[str] | None = None
