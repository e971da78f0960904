"""LockstepGRPO: advantages, validation, and real steps of the tiny model."""

from __future__ import annotations

import pytest

from medgym.errors import ConfigError
from medgym.learning.grpo import GRPOConfig, group_advantages
from medgym.learning.losses import clipped_surrogate, token_mean


def test_advantages_are_group_relative() -> None:
    adv = group_advantages([1.0, 0.0, 3.0, 3.0], 2, scale=True)
    assert adv[0] == pytest.approx(1.0, abs=1e-3) and adv[1] == pytest.approx(-1.0, abs=1e-3)
    assert adv[2:] == [0.0, 0.0]  # a group that agrees carries no signal
    assert group_advantages([2.0, 0.0], 2, scale=False) == [1.0, -1.0]


def test_advantages_need_whole_groups() -> None:
    with pytest.raises(ConfigError, match="whole groups of 4"):
        group_advantages([1.0, 0.0, 1.0], 4, scale=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_generations": 1}, "num_generations >= 2"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"lr": 0.0}, "must be > 0"),
        ({"minibatch": 0}, "minibatch"),
        ({"beta": -0.1}, "beta must be a finite number >= 0"),
        ({"beta": float("inf")}, "beta must be a finite number >= 0"),
        ({"num_iterations": 0}, "num_iterations must be >= 1"),
        ({"epsilon": 0.0}, r"epsilon \(the PPO clip range\) must be in \(0, 1\)"),
        ({"epsilon": 1.5}, "got 1.5"),
        ({"loss_type": "bnpo"}, "loss_type must be 'grpo' or 'dapo'; got 'bnpo'"),
        ({"entropy_coeff": float("nan")}, "entropy_coeff must be a finite number"),
    ],
    ids=[
        "one-generation",
        "no-steps",
        "zero-lr",
        "no-minibatch",
        "negative-beta",
        "inf-beta",
        "no-iterations",
        "zero-epsilon",
        "big-epsilon",
        "unknown-loss",
        "nan-entropy",
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GRPOConfig(**kwargs)


@pytest.fixture(scope="module")
def trained(format_warm_dir):
    """Three GRPO steps of the small warm-started model on label-stripped samples."""
    import torch

    from medgym.agents.hf_policy import HFPolicy
    from medgym.agents.tiny_vlm import TINY_SESSION, TINY_TASK
    from medgym.data import load
    from medgym.envs.config import SessionConfig
    from medgym.integrations.trl.rewards import SessionGroupReward
    from medgym.learning.bench import strip_labels
    from medgym.learning.grpo import LockstepGRPO

    policy = HFPolicy.from_pretrained(str(format_warm_dir), seed=0)
    samples = strip_labels(load("synthetic", split="validate", num_samples=6, **TINY_TASK))
    reward = SessionGroupReward(
        num_generations=4, reward="label_free", reward_options={"embedder": "hashing"}
    )
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    trainer = LockstepGRPO(
        policy, samples, session_config=SessionConfig.from_dict(TINY_SESSION),
        profile=policy.profile, reward=reward,
        config=GRPOConfig(steps=3, prompts_per_step=2, num_generations=4, lr=1e-3),
    )  # fmt: skip
    seen = []
    real_rollout = trainer.rollout

    def spy(batch):
        sessions = real_rollout(batch)
        seen.extend(sessions)
        return sessions

    trainer.rollout = spy
    history = trainer.train()
    return {"history": history, "before": before, "model": policy.model, "seen": seen,
            "torch": torch}  # fmt: skip


def test_steps_record_metrics_and_change_the_model(trained) -> None:
    history = trained["history"]
    assert [r["step"] for r in history] == [1, 2, 3]
    for r in history:
        assert {"reward", "tool_call_rate", "answer_rate", "loss", "step_seconds"} <= set(r)
        assert len(r["sample_ids"]) == 2 and len(r["pseudo_labels"]) == 2
    torch = trained["torch"]
    if any(r["live_fraction"] > 0 for r in history):
        changed = [
            n for n, p in trained["model"].named_parameters()
            if not torch.equal(p.detach(), trained["before"][n])
        ]  # fmt: skip
        assert changed, "a step with non-zero advantages left every parameter unchanged"


def test_trainer_only_ever_saw_unlabelled_samples(trained) -> None:
    assert len(trained["seen"]) == 3 * 2 * 4
    for session in trained["seen"]:
        s = session.sample
        assert s.answer is None and s.evidence == () and "findings" not in s.meta
        assert "accuracy" not in session.reward_parts or session.reward_parts["accuracy"] == 0.0


def _tiny_trainer(warm_dir, num_samples: int = 4, **config):
    """A LockstepGRPO of the small warm-started model on label-stripped samples, with the
    model's starting parameters: ``(policy, trainer, start)``."""
    from medgym.agents.hf_policy import HFPolicy
    from medgym.agents.tiny_vlm import TINY_SESSION, TINY_TASK
    from medgym.data import load
    from medgym.envs.config import SessionConfig
    from medgym.integrations.trl.rewards import SessionGroupReward
    from medgym.learning.bench import strip_labels
    from medgym.learning.grpo import LockstepGRPO

    samples = strip_labels(
        load("synthetic", split="validate", num_samples=num_samples, **TINY_TASK)
    )
    policy = HFPolicy.from_pretrained(str(warm_dir), seed=0)
    start = [p.detach().clone() for p in policy.model.parameters()]
    trainer = LockstepGRPO(
        policy, samples, session_config=SessionConfig.from_dict(TINY_SESSION),
        profile=policy.profile,
        reward=SessionGroupReward(num_generations=2, reward="label_free",
                                  reward_options={"embedder": "hashing"}),
        config=GRPOConfig(prompts_per_step=2, num_generations=2, lr=3e-3, **config),
    )  # fmt: skip
    return policy, trainer, start


def test_the_kl_guard_holds_the_policy_near_its_start(format_warm_dir) -> None:
    """beta > 0: a frozen reference, every episode in the loss, the KL logged."""
    import torch

    def run(beta: float) -> list[dict]:
        _, trainer, start = _tiny_trainer(format_warm_dir, steps=3, beta=beta)
        assert (trainer.reference is not None) == (beta > 0)
        history = trainer.train()
        if trainer.reference is not None:  # the reference stays where it started
            for p, p0 in zip(trainer.reference.parameters(), start, strict=True):
                assert torch.equal(p, p0) and not p.requires_grad
        return history

    assert all(r["kl"] == 0.0 for r in run(0.0))
    guarded = run(0.5)
    assert all(r["live_fraction"] == 1.0 for r in guarded)  # every episode carries the KL term
    assert guarded[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # on-policy start: KL is zero
    assert all(r["kl"] >= 0.0 for r in guarded) and guarded[-1]["kl"] > 0.0


def test_freeze_vision_trains_the_language_model_only(format_warm_dir) -> None:
    import torch

    policy, trainer, _ = _tiny_trainer(format_warm_dir, steps=2, beta=0.5, freeze_vision=True)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    trainer.train()  # beta > 0: every episode is in the loss, so the step moves something
    moved = {n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])}
    vision = {n for n in before if ".visual." in n or n.startswith("visual.")}
    assert vision, "the tiny model's vision tower was not found by name"
    assert not moved & vision
    assert moved - vision, "the language model did not train"


def test_freeze_vision_needs_a_vision_tower() -> None:
    import torch

    from medgym.learning.grpo import _vision_tower

    with pytest.raises(ConfigError, match="no vision tower"):
        _vision_tower(torch.nn.Linear(2, 2))


def test_clipped_surrogate_is_the_policy_gradient_on_policy_and_stops_outside_the_clip() -> None:
    import torch

    mask = torch.tensor([[True, True, False]])
    # on-policy (r = 1): the objective is A per token and its gradient A * grad log p
    logp = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    obj, clipped = clipped_surrogate(logp, logp.detach(), torch.tensor([2.0]), mask, 0.2)
    (obj * mask).sum().backward()
    assert obj[0].tolist() == pytest.approx([2.0, 2.0, 2.0]) and clipped == 0.0
    assert logp.grad[0].tolist() == pytest.approx([2.0, 2.0, 0.0])
    # r = e^0.5 > 1 + eps with A > 0: held at 1 + eps, no gradient; with A < 0 it still pushes
    old = torch.tensor([[-1.0, -2.0, -3.0]])
    for adv, grad_zero in ((1.0, True), (-1.0, False)):
        logp = (old + 0.5).requires_grad_(True)
        obj, clipped = clipped_surrogate(logp, old, torch.tensor([adv]), mask, 0.2)
        (obj * mask).sum().backward()
        assert clipped == 2.0  # both unmasked tokens are outside [0.8, 1.2]
        assert (logp.grad[0, :2].abs().sum().item() == 0.0) is grad_zero
        if adv > 0:
            assert obj[0, 0].item() == pytest.approx(1.2)


def test_dapo_leaves_a_shared_prefix_alone_and_grpo_does_not() -> None:
    """Two replies of one group (A = +1, -1) share their first two tokens; the longer one has
    two more. DAPO's token sum cancels on the shared tokens; GRPO's per-episode means weigh the
    short reply's tokens more, so the shared tokens are pushed down (the length bias)."""
    import torch

    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0])
    for loss_type, shared_grad in (("dapo", 0.0), ("grpo", -0.125)):
        shared = torch.zeros(2, requires_grad=True)  # log p of the shared tokens
        logp = torch.cat([shared.expand(2, 2), torch.zeros(2, 2)], dim=1)
        obj = token_mean(logp * adv.unsqueeze(-1), mask, loss_type, episodes=2, tokens=6)
        obj.backward()
        assert shared.grad.tolist() == pytest.approx([shared_grad, shared_grad])


def test_more_iterations_move_the_policy_further_within_the_clip(format_warm_dir) -> None:
    """num_iterations > 1: more passes over the same rollouts, the clipped share logged."""

    def run(iterations: int) -> tuple[float, list[dict]]:
        policy, trainer, start = _tiny_trainer(
            format_warm_dir, steps=1, beta=0.1, num_iterations=iterations
        )
        history = trainer.train()
        moved = sum(
            float((p.detach() - p0).norm())
            for p, p0 in zip(policy.model.parameters(), start, strict=True)
        )
        return moved, history

    one, h1 = run(1)
    three, h3 = run(3)
    assert h1[0]["clip_fraction"] == 0.0
    assert 0.0 < h3[0]["clip_fraction"] <= 1.0  # lr 3e-3 leaves the trust region
    assert h3[0]["loss"] == pytest.approx(h1[0]["loss"], rel=1e-4)  # the same first pass
    assert three > 1.5 * one


@pytest.mark.parametrize("coeff", [-1.0, 1.0], ids=["minimise", "bonus"])
def test_entropy_coeff_moves_the_entropy_its_way(format_warm_dir, coeff: float) -> None:
    """verl's sign: the loss subtracts ``entropy_coeff * entropy``, so a small gradient step
    on the entropy term alone (zero advantages) lowers the entropy when it is negative."""
    import torch

    from medgym.learning.losses import token_logp

    policy, trainer, _ = _tiny_trainer(format_warm_dir, steps=1, entropy_coeff=coeff)
    sessions = trainer.rollout(trainer.samples[:2])
    encoded = trainer._encode(sessions)
    batch, targets, mask = encoded

    def mean_entropy() -> float:
        with torch.no_grad():
            _, h = token_logp(policy.model(**batch).logits, targets, entropy=True)
        return float(((h * mask).sum(-1) / mask.sum(-1)).mean())  # per episode, as logged

    before = mean_entropy()
    policy.model.zero_grad()
    _, _, logged, _ = trainer._loss_pass(encoded, [0.0] * len(sessions), None, 100.0)
    assert logged / len(sessions) == pytest.approx(before, rel=1e-4)
    with torch.no_grad():  # plain gradient descent: the direction, without Adam's scaling
        for p in policy.model.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    after = mean_entropy()
    assert (after < before) if coeff < 0 else (after > before), (before, after)


def test_every_step_logs_the_entropy_and_trains_every_episode(format_warm_dir) -> None:
    _, trainer, _ = _tiny_trainer(format_warm_dir, steps=2, entropy_coeff=-0.1)
    history = trainer.train()
    assert all(r["entropy"] > 0 and r["live_fraction"] == 1.0 for r in history)
