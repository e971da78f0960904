"""The EVR engine: branch mode (a tree of rollouts per question) and reground mode.

Branch mode (MedVR): decision tokens are known only once a turn ends, so the branch point is the
*start* of the turn whose signal crossed the threshold. The rollout keeps its turn, and
``num_branches - 1`` forks (``session.fork()`` taken before the turn was applied) resample it,
hotter where the policy supports it, until the question's leaf budget is spent. Every leaf is a
full trajectory with ``parent_id`` and ``branch_turn`` set, so advantages can be computed over
the leaves. Roots are started ``initial_rollouts`` at a time while budget remains, so a question
always ends with exactly ``leaf_budget`` leaves.

Reground mode: when an answer turn's signal fires, the answer is not accepted: the turn is kept
as an injected assistant message, a look-again instruction is injected, and the episode goes on
(at most ``max_regrounds`` times per episode).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medgym.agents.evr.budget import LeafBudget
from medgym.agents.evr.config import EVRConfig
from medgym.agents.evr.signal import RolloutSignal, Threshold, turn_signal
from medgym.agents.evr.stats import EVRStats
from medgym.agents.evr.tree import BatchedPolicy, BranchTree
from medgym.agents.policy import Generation, Policy
from medgym.core.answers import resolve_option
from medgym.core.parsing import parse_turn

if TYPE_CHECKING:
    from medgym.core.sample import Sample
    from medgym.envs.session import EpisodeSession

__all__ = ["EVREngine", "generate_many"]

logger = logging.getLogger(__name__)

SessionFactory = Callable[["Sample", int], "EpisodeSession"]


async def generate_many(policy: Policy, sessions: list[EpisodeSession]) -> list[Generation]:
    """Next turns of several sessions: one batched call where the policy has one."""
    if not sessions:
        return []
    batch = getattr(policy, "generate_batch", None)
    if batch is not None:
        return list(await batch(sessions))
    return list(await asyncio.gather(*(policy.generate(s) for s in sessions)))


def _apply(session: EpisodeSession, gen: Generation) -> None:
    session.apply_turn(
        gen.text, token_ids=gen.token_ids, token_logprobs=gen.logprobs,
        token_entropies=gen.entropies,
    )  # fmt: skip


def _fork(
    session: EpisodeSession,
    signal: RolloutSignal,
    j: int,
    pairs: list[tuple[EpisodeSession, EpisodeSession]],
) -> _Node:
    """Fork ``j`` of ``session`` before its turn: a hot node with the pre-turn signal."""
    child = session.fork(trajectory_id=f"{session.trajectory_id}.b{len(session.turns)}-{j}")
    pairs.append((child, session))
    return _Node(child, signal.copy(), hot=True)


@dataclass
class _Node:
    session: EpisodeSession
    signal: RolloutSignal = field(default_factory=RolloutSignal)
    hot: bool = False  # resample the next turn with the branch policy


class EVREngine:
    """Runs EVR for one policy; the quantile threshold and the stats persist across calls.

    Args:
        config: EVR settings.
        branch_policy: Policy that resamples branched turns; default: ``policy.with_sampling(
            temperature=config.branch_temperature)`` where the policy has it, else the policy.
    """

    def __init__(self, config: EVRConfig, *, branch_policy: Policy | None = None) -> None:
        self.config = config
        self.branch_policy = branch_policy
        self.threshold = Threshold(config)
        self.stats = EVRStats()

    def score(self, signal: RolloutSignal, gen: Generation) -> bool:
        """Score one generated turn of a rollout; whether EVR fires on it.

        Updates the rollout's running ``signal``, the shared threshold history and the stats.
        """
        sig = turn_signal(gen, self.config, signal, getattr(gen, "pieces", None))
        if sig is not None:
            self.stats.turns_scored += 1
        fired = self.threshold.fires(sig)
        self.stats.fires += fired
        return fired

    def should_reground(self, session: EpisodeSession, text: str, done_regrounds: int) -> bool:
        """Whether a fired turn's answer is withheld (reground mode).

        Only a turn that answers without calling a tool, in an episode that has regrounds left
        and room to call a tool and then answer.
        """
        if done_regrounds >= self.config.max_regrounds or not self._can_reground(session):
            return False
        parsed = parse_turn(text, max_calls=session.config.max_calls_per_turn)
        return bool(parsed.answer) and not parsed.calls

    def withhold(self, session: EpisodeSession, text: str) -> str | None:
        """Keep ``text`` as an injected assistant turn and inject the look-again instruction.

        Returns:
            The withheld answer (resolved against the options), for flip statistics.
        """
        parsed = parse_turn(text, max_calls=session.config.max_calls_per_turn)
        session.inject(text, role="assistant")
        session.inject(self.config.reground_text, role="user")
        self.stats.regrounds += 1
        return resolve_option(parsed.answer, session.sample.options) if parsed.answer else None

    def _hot_policy(self, policy: Policy) -> Policy:
        if self.branch_policy is not None:
            return self.branch_policy
        with_sampling: Any = getattr(policy, "with_sampling", None)
        if with_sampling is not None:
            return with_sampling(temperature=self.config.branch_temperature)
        return policy

    # ------------------------------------------------------------------ branch mode
    async def tree(
        self, sample: Sample, policy: Policy, new_session: SessionFactory
    ) -> list[EpisodeSession]:
        """Roll out a tree for ``sample``; returns exactly ``leaf_budget`` finished leaves.

        The tree is :class:`~medgym.agents.evr.tree.BranchTree`, the scheduler verl's TQ worker
        runs too; each leaf is an episode task, and concurrent turns share one batched call
        (:class:`~medgym.agents.evr.tree.BatchedPolicy`).

        Args:
            sample: The question.
            policy: The policy.
            new_session: ``(sample, k) -> session`` for root ``k``.

        Returns:
            The leaves, in leaf order.
        """
        cfg = self.config
        cold_policy = BatchedPolicy(policy)
        hot_policy = BatchedPolicy(self._hot_policy(policy))
        tree = BranchTree(
            LeafBudget(
                cfg.leaf_budget, initial_rollouts=cfg.initial_rollouts,
                num_branches=cfg.num_branches,
            )
        )  # fmt: skip
        pairs: list[tuple[EpisodeSession, EpisodeSession]] = []  # (fork, rollout it left)

        async def run_leaf(leaf_id: int, snapshot: _Node | None, tree: BranchTree) -> Any:
            node = snapshot if snapshot is not None else _Node(new_session(sample, leaf_id))
            while not node.session.done:
                gen = await (hot_policy if node.hot else cold_policy).generate(node.session)
                before = node.signal.copy()
                if self.score(node.signal, gen):  # forks start now, from the pre-turn state
                    make = functools.partial(_fork, node.session, before, pairs=pairs)
                    self.stats.branches += tree.branch(make)
                node.hot = False
                _apply(node.session, gen)
            return node.session

        leaves = await asyncio.gather(*(tree.leaf(i, run_leaf) for i in range(cfg.leaf_budget)))
        for child, origin in pairs:
            self.stats.record_flip(
                origin.answer, child.answer, child.reward_parts.get("accuracy", 0.0)
            )
        return list(leaves)

    # ------------------------------------------------------------------ reground mode
    async def reground(self, policy: Policy, session: EpisodeSession) -> EpisodeSession:
        """Drive ``session`` to the end, asking the model to look again before uncertain answers."""
        node = _Node(session)
        rejected: str | None = None
        done_regrounds = 0
        while not session.done:
            gen = await policy.generate(session)
            fired = self.score(node.signal, gen)
            if fired and self.should_reground(session, gen.text, done_regrounds):
                rejected = self.withhold(session, gen.text)
                done_regrounds += 1
                continue
            _apply(session, gen)
        if rejected is not None:
            self.stats.record_flip(
                rejected, session.answer, session.reward_parts.get("accuracy", 0.0)
            )
        return session

    @staticmethod
    def _can_reground(session: EpisodeSession) -> bool:
        # Room to call a tool and then answer.
        return bool(session.tools) and session.images_left > 0 and session.turns_left > 1
