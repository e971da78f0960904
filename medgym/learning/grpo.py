"""``LockstepGRPO``: GRPO over medgym's own batched episode engine, for small models on CPU.

One step draws ``prompts_per_step`` samples, runs ``num_generations`` episodes of each through
:meth:`GroupRunner.run_sessions` (every unfinished episode advances one turn per batched
``generate`` call), scores each group with :class:`SessionGroupReward` (the scoring TRL's
integration uses: group reward minus session penalties), turns the rewards into group-relative
advantages and takes one policy-gradient step on the assistant tokens of every episode. The
update is on-policy with one optimisation pass per batch by default, so the clipped PPO ratio
is 1 and the loss reduces to ``-A * mean log p(assistant tokens)`` (GRPO with
``num_iterations=1``). ``num_iterations > 1`` is GRPO's ``mu`` (verl's ``ppo_epochs``): more
passes over the same rollouts, each after the first on PPO's clipped surrogate
``min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r`` the ratio of the current to the sampling
policy's token probability, so a batch moves the policy further without leaving the trust region.
With ``beta > 0`` a frozen copy of the starting model is the reference and every episode adds
``beta`` times its mean per-token KL estimate to it (the ``k3`` estimator of GRPO and TRL,
``exp(r - p) - (r - p) - 1`` for log-probabilities ``p`` and ``r``): the guard that keeps a weak
policy from drifting into a degenerate format when the reward carries little signal. The default
``beta=0`` is TRL's. The trainer never reads a label: it sees samples and the
reward only; anything that compares with hidden labels is a callback's business.

Why not TRL's ``GRPOTrainer`` here: see ``docs/learning.md`` (measured per-step cost, and a
crash of TRL 1.16's tool loop on a second tool turn without images). TRL stays the
integration for real models (``training/run_trl.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import ModelProfile
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError
from medgym.learning.losses import clipped_surrogate, episode_mean_sum, token_logp, token_mean

__all__ = ["GRPOConfig", "LockstepGRPO", "freeze_vision_tower", "group_advantages"]

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, dict[str, Any], "LockstepGRPO"], None]


@dataclass(frozen=True, kw_only=True)
class GRPOConfig:
    """Settings of :class:`LockstepGRPO`.

    Attributes:
        steps: Optimiser steps.
        prompts_per_step: Samples (groups) per step.
        num_generations: Episodes per sample (GRPO's G).
        lr: AdamW learning rate (constant).
        temperature: Sampling temperature of the rollouts.
        max_new_tokens: Cap on generated tokens per turn.
        minibatch: Episodes per forward/backward pass (gradients accumulate over the step).
        max_grad_norm: Gradient clipping norm.
        scale_rewards: Divide advantages by the group's reward std (GRPO); ``False``: Dr. GRPO.
        beta: Weight of the KL term to the starting model (0: none, no reference kept).
        freeze_vision: Keep the vision tower (``model.visual``, merger included) as it is and
            train the language model only, as verl's ``freeze_vision_tower`` does. RL's
            gradient reaches the tower as noise, which AdamW turns into full-size steps: on
            the tiny agent, 40 steps at lr 3e-5 took its perception from 0.70 to 0.60 with
            the tower trained (``docs/learning.md``).
        num_iterations: Optimisation passes over each step's rollouts (GRPO's ``mu``); passes
            after the first use the clipped surrogate.
        epsilon: Clip range of the importance ratio on passes after the first.
        loss_type: How token terms become the loss, with TRL's names: ``"grpo"``, the mean
            over each episode's tokens, then over episodes; ``"dapo"``, the sum over all
            tokens over the step's generated tokens. Within a group the episodes share the
            prompt, so under ``"dapo"`` a shared prefix of their replies gets no net gradient
            (advantages sum to zero); under ``"grpo"`` it does unless their lengths are equal
            (the length bias of Dr. GRPO and DAPO).
        entropy_coeff: Weight of the mean token entropy of the replies, subtracted from the
            loss as in verl's actor: > 0 is an entropy bonus (exploration), < 0 minimises
            entropy (sharpens the policy: a label-free signal of its own). Every step logs
            ``entropy`` (the mean over its trained episodes) whatever the weight.
        penalty_weight: Scale of the session penalties (applied to ``SessionConfig.penalties``
            by whoever builds the session config, as ``medgym learning`` does).
        seed: Seed of the sample order and of sampling.
    """

    steps: int = 40
    prompts_per_step: int = 8
    num_generations: int = 4
    lr: float = 3e-4
    temperature: float = 1.0
    max_new_tokens: int = 64
    minibatch: int = 16
    max_grad_norm: float = 1.0
    scale_rewards: bool = True
    beta: float = 0.0
    freeze_vision: bool = False
    num_iterations: int = 1
    epsilon: float = 0.2
    loss_type: Literal["grpo", "dapo"] = "grpo"
    entropy_coeff: float = 0.0
    penalty_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "minibatch", "max_new_tokens", "num_iterations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ConfigError(f"GRPO needs num_generations >= 2; got {self.num_generations}")
        if not math.isfinite(self.entropy_coeff):
            raise ConfigError(f"entropy_coeff must be a finite number; got {self.entropy_coeff}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ConfigError(f"beta must be a finite number >= 0; got {self.beta}")
        if self.loss_type not in ("grpo", "dapo"):
            raise ConfigError(f"loss_type must be 'grpo' or 'dapo'; got {self.loss_type!r}")
        if not 0 < self.epsilon < 1:
            raise ConfigError(f"epsilon (the PPO clip range) must be in (0, 1); got {self.epsilon}")
        if not (self.lr > 0 and self.temperature > 0 and self.max_grad_norm > 0):
            raise ConfigError(
                f"lr, temperature and max_grad_norm must be > 0; got {self.lr}, "
                f"{self.temperature}, {self.max_grad_norm}"
            )


def freeze_vision_tower(model: Any) -> None:
    """Keep ``model``'s vision tower (merger included) out of training (``requires_grad`` off).

    Raises:
        ConfigError: The model has no vision tower (``visual``).
    """
    _vision_tower(model).requires_grad_(False)


def _vision_tower(model: Any) -> Any:
    """The model's vision tower (``visual``, on the model or its inner ``model``).

    Raises:
        ConfigError: The model has none.
    """
    for owner in (model, getattr(model, "model", None)):
        tower = getattr(owner, "visual", None)
        if tower is not None:
            return tower
    raise ConfigError(
        f"freeze_vision: {type(model).__name__} has no vision tower (`visual`); "
        "set freeze_vision=False"
    )


def group_advantages(rewards: Sequence[float], group_size: int, *, scale: bool) -> list[float]:
    """Group-relative advantages: reward minus its group's mean (over the std when ``scale``).

    Raises:
        ConfigError: If ``rewards`` is not whole groups.

    Example:
        >>> group_advantages([1.0, 0.0, 0.5, 0.5], 2, scale=False)
        [0.5, -0.5, 0.0, 0.0]
    """
    if group_size < 1 or len(rewards) % group_size:
        raise ConfigError(f"{len(rewards)} rewards are not whole groups of {group_size}")
    out: list[float] = []
    for i in range(0, len(rewards), group_size):
        chunk = rewards[i : i + group_size]
        mean = sum(chunk) / group_size
        std = math.sqrt(sum((r - mean) ** 2 for r in chunk) / group_size)
        out += [(r - mean) / (std + 1e-4) if scale else r - mean for r in chunk]
    return out


class LockstepGRPO:
    """GRPO of an :class:`~medgym.agents.hf_policy.HFPolicy` on medgym episodes.

    Args:
        policy: The policy; its model is trained in place.
        samples: Training samples (labels are neither needed nor read).
        session_config: Tools and budgets of the episodes.
        profile: Model profile of the episodes.
        reward: The scorer (a :class:`SessionGroupReward` of ``num_generations``).
        config: GRPO settings.
        callback: ``fn(step, record, trainer)`` after every step (curves, probes).
    """

    def __init__(
        self,
        policy: Any,
        samples: Sequence[Sample],
        *,
        session_config: SessionConfig,
        profile: ModelProfile,
        reward: Any,
        config: GRPOConfig | None = None,
        callback: StepCallback | None = None,
    ) -> None:
        import torch

        self.config = cfg = config or GRPOConfig()
        if not samples:
            raise ConfigError("LockstepGRPO needs at least one training sample")
        if getattr(reward, "num_generations", cfg.num_generations) != cfg.num_generations:
            raise ConfigError(
                f"reward scores groups of {reward.num_generations} but num_generations is "
                f"{cfg.num_generations}"
            )
        self.policy = policy.with_sampling(
            temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, do_sample=True
        )
        self.policy.batch_size = max(
            self.policy.batch_size, cfg.prompts_per_step * cfg.num_generations
        )
        self.samples = list(samples)
        self.session_config = session_config
        self.profile = profile
        self.reward = reward
        self.callback = callback
        self.model = policy.model
        self.processor = policy.processor
        if cfg.freeze_vision:
            freeze_vision_tower(self.model)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=0.0)
        self.reference = _frozen_copy(self.model) if cfg.beta > 0 else None
        self._order = torch.Generator().manual_seed(cfg.seed)
        self._queue: list[int] = []
        self.history: list[dict[str, Any]] = []

    def _next_batch(self) -> list[Sample]:
        import torch

        out = []
        for _ in range(self.config.prompts_per_step):
            if not self._queue:
                self._queue = torch.randperm(len(self.samples), generator=self._order).tolist()
            out.append(self.samples[self._queue.pop()])
        return out

    def rollout(self, samples: Sequence[Sample]) -> list[EpisodeSession]:
        """Run ``num_generations`` episodes of each sample; sessions come back group by group."""
        from medgym.agents.runner import GroupRunner

        g = self.config.num_generations
        runner = GroupRunner(
            self.session_config, profile=self.profile, n=g,
            concurrency=len(samples) * g, progress=False,
        )  # fmt: skip
        self.model.eval()
        per_sample = asyncio.run(runner.run_sessions(samples, self.policy))
        return [s for chunk in per_sample for s in chunk]

    def _encode(self, sessions: Sequence[EpisodeSession]) -> tuple[dict[str, Any], Any, Any]:
        """One padded batch of ``sessions``: model inputs, next-token targets, their mask."""
        from medgym.agents.tiny_vlm.warm_start import collate, encode_episode

        pad_id = self.processor.tokenizer.pad_token_id
        batch = collate([encode_episode(self.processor, s) for s in sessions], pad_id)
        targets = batch.pop("labels")[:, 1:]
        return batch, targets, targets != -100

    def _loss_pass(
        self,
        encoded: tuple[dict[str, Any], Any, Any],
        advantages: Sequence[float],
        old_logp: Any,
        step_tokens: float,
    ) -> tuple[float, float, float, float]:
        """Accumulate the policy loss, KL and entropy terms over the assistant tokens.

        Per token the objective is ``A * log p`` on the first, on-policy pass (``old_logp``
        None) and PPO's ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` on later ones; it is
        averaged per episode then over the step's episodes (``loss_type="grpo"``) or summed
        over tokens and divided by the step's generated tokens (``"dapo"``). ``beta`` times
        the KL to the reference is added, ``entropy_coeff`` times the entropy subtracted.

        Returns:
            ``(summed loss, summed per-episode mean KL, summed per-episode mean entropy,
            clipped tokens)`` of the chunk (KL 0 when ``beta`` is).
        """
        import torch

        batch, targets, mask = encoded
        logp, entropy = token_logp(self.model(**batch).logits, targets, entropy=True)
        adv = torch.tensor(advantages, dtype=logp.dtype)
        clipped = 0.0
        if old_logp is None:
            token_obj = logp * adv.unsqueeze(-1)
        else:
            token_obj, clipped = clipped_surrogate(logp, old_logp, adv, mask, self.config.epsilon)
        loss = -self._reduce(token_obj, mask, step_tokens)
        if self.config.entropy_coeff:
            loss = loss - self.config.entropy_coeff * self._reduce(entropy, mask, step_tokens)
        entropy_sum = episode_mean_sum(entropy, mask)
        kl_sum = 0.0
        if self.reference is not None:
            with torch.no_grad():
                ref = token_logp(self.reference(**batch).logits, targets)
            delta = ref - logp
            token_kl = torch.exp(delta) - delta - 1
            loss = loss + self.config.beta * self._reduce(token_kl, mask, step_tokens)
            kl_sum = episode_mean_sum(token_kl, mask)
        loss.backward()
        return float(loss.detach()), kl_sum, entropy_sum, clipped

    def _reduce(self, values: Any, mask: Any, step_tokens: float) -> Any:
        cfg = self.config
        episodes = cfg.prompts_per_step * cfg.num_generations
        return token_mean(values, mask, cfg.loss_type, episodes=episodes, tokens=step_tokens)

    def _sampling_logp(self, encoded: tuple[dict[str, Any], Any, Any]) -> Any:
        """Token log-probabilities of the policy that sampled the rollouts (no gradient)."""
        import torch

        batch, targets, _ = encoded
        with torch.no_grad():
            return token_logp(self.model(**batch).logits, targets)

    def step(self, index: int) -> dict[str, Any]:
        """One GRPO step; returns its metrics record (the reward's record plus timings)."""
        import torch

        cfg = self.config
        t0 = time.perf_counter()
        sessions = self.rollout(self._next_batch())
        t1 = time.perf_counter()
        rewards, record = self.reward.score(sessions)
        advantages = group_advantages(rewards, cfg.num_generations, scale=cfg.scale_rewards)
        # an episode with no advantage moves nothing, unless the KL or entropy term acts on it
        live = [
            (s, a)
            for s, a in zip(sessions, advantages, strict=True)
            if a != 0.0 or self.reference is not None or cfg.entropy_coeff
        ]
        chunks = [live[i : i + cfg.minibatch] for i in range(0, len(live), cfg.minibatch)]
        encoded = [self._encode([s for s, _ in chunk]) for chunk in chunks]
        old = [None] * len(chunks)
        if cfg.num_iterations > 1:  # the sampling policy's probabilities, before any update
            self.model.train()
            old = [self._sampling_logp(e) for e in encoded]
        generated = sum(len(t.token_ids or ()) for s in sessions for t in s.turns)
        trained_tokens = sum(float(e[2].sum()) for e in encoded)
        # dapo's normaliser: every generated token of the step, live episode or not
        step_tokens = float(generated or trained_tokens or 1)
        loss, kl, entropy, clipped, grad_norm = 0.0, 0.0, 0.0, 0.0, 0.0
        self.model.train()
        for it in range(cfg.num_iterations if live else 0):
            self.optimizer.zero_grad()
            for chunk, enc, old_logp in zip(chunks, encoded, old, strict=True):
                c_loss, c_kl, c_entropy, c_clipped = self._loss_pass(
                    enc, [a for _, a in chunk], old_logp if it else None, step_tokens
                )
                clipped += c_clipped
                if it == 0:
                    loss, kl, entropy = loss + c_loss, kl + c_kl, entropy + c_entropy
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            )
            self.optimizer.step()
        self.model.eval()
        record.update(
            step=index,
            loss=loss,
            kl=kl / len(sessions),
            entropy=entropy / len(live) if live else 0.0,
            grad_norm=grad_norm,
            live_fraction=len(live) / len(sessions),
            clip_fraction=clipped / (trained_tokens * (cfg.num_iterations - 1))
            if trained_tokens and cfg.num_iterations > 1
            else 0.0,
            completion_tokens=generated / len(sessions),
            rollout_seconds=t1 - t0,
            step_seconds=time.perf_counter() - t0,
        )
        return record

    def train(self, progress: bool = False, label: str = "GRPO") -> list[dict[str, Any]]:
        """Run :attr:`GRPOConfig.steps` steps; returns every step's record."""
        import torch

        torch.manual_seed(self.config.seed)
        self.policy.seed = self.config.seed
        with _step_bar(self.config.steps, progress, label) as advance:
            for k in range(1, self.config.steps + 1):
                record = self.step(k)
                if self.callback is not None:
                    self.callback(k, record, self)
                self.history.append(record)
                advance(record)
        return self.history


def _frozen_copy(model: Any) -> Any:
    """A copy of ``model`` in eval mode with no gradients: the KL reference."""
    import copy

    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


class _NullBar:
    def __enter__(self) -> Callable[[dict[str, Any]], None]:
        return lambda record: None

    def __exit__(self, *exc: object) -> None:
        return None


class _RichBar:
    def __init__(self, total: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]:.3f}"), TimeRemainingColumn(), transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=total, reward=float("nan"))

    def __enter__(self) -> Callable[[dict[str, Any]], None]:
        self.progress.start()
        return lambda record: self.progress.update(
            self.task, advance=1, reward=float(record.get("reward", float("nan")))
        )

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _step_bar(total: int, enabled: bool, label: str) -> _NullBar | _RichBar:
    return _RichBar(total, label) if enabled else _NullBar()
