"""The loss arithmetic of :class:`~medgym.learning.grpo.LockstepGRPO`, as tensor functions.

Per-token terms and how they become a step's loss: token log-probabilities and entropy, PPO's
clipped surrogate, the ``grpo`` / ``dapo`` means.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clipped_surrogate", "episode_mean_sum", "token_logp", "token_mean"]


def token_mean(values: Any, mask: Any, loss_type: str, *, episodes: int, tokens: float) -> Any:
    """A chunk's share of a step's mean of per-token ``values``, as ``loss_type`` takes it.

    Args:
        values: ``(batch, tokens)`` per-token terms of the chunk's episodes.
        mask: ``(batch, tokens)``, true on the tokens that count.
        loss_type: ``"grpo"``: each episode's mean over its tokens, summed and divided by the
            step's ``episodes``; ``"dapo"``: the sum over tokens divided by the step's
            generated ``tokens``.
        episodes: Episodes in the step (chunks sum to the step's mean).
        tokens: Generated tokens in the step.

    Example:
        >>> import torch
        >>> v, m = torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([[1, 1], [1, 0]])
        >>> float(token_mean(v, m, "grpo", episodes=2, tokens=3)), float(
        ...     token_mean(v, m, "dapo", episodes=2, tokens=3))
        (2.0, 2.0)
    """
    if loss_type == "dapo":
        return (values * mask).sum() / tokens
    return ((values * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum() / episodes


def clipped_surrogate(
    logp: Any, old_logp: Any, advantages: Any, mask: Any, epsilon: float
) -> tuple[Any, float]:
    """PPO's clipped objective per token: ``min(r A, clip(r, 1 - epsilon, 1 + epsilon) A)``.

    Args:
        logp: ``(batch, tokens)`` log-probabilities under the policy being trained.
        old_logp: The same under the policy that sampled the rollouts (no gradient).
        advantages: ``(batch,)`` advantage of each sequence.
        mask: ``(batch, tokens)``, true on the tokens that count.
        epsilon: Clip range: ``r`` is held in ``[1 - epsilon, 1 + epsilon]``.

    Returns:
        ``(per-token objective (to maximise), number of clipped tokens under mask)``. At
        ``r = 1`` its gradient is ``A * grad log p``: the first, on-policy pass's.
    """
    ratio = (logp - old_logp).exp()
    a = advantages.unsqueeze(-1)
    token_obj = (ratio * a).minimum(ratio.clamp(1 - epsilon, 1 + epsilon) * a)
    clipped = float((((ratio - 1).abs() > epsilon) & mask).sum())
    return token_obj, clipped


def token_logp(logits: Any, targets: Any, *, entropy: bool = False) -> Any:
    """Log-probability of each next token ``targets`` under ``logits`` (one position ahead).

    With ``entropy``: ``(log-probabilities, entropy of each position's distribution)``.
    """
    import torch

    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    if not entropy:
        return picked
    return picked, -(logprobs.exp() * logprobs).sum(-1)


def episode_mean_sum(values: Any, mask: Any) -> float:
    """The sum over episodes of each one's mean of ``values`` over its masked tokens (logging)."""
    return float(token_mean(values.detach(), mask, "grpo", episodes=1, tokens=1.0))
