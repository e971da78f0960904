"""EVR branch mode's scheduler: a tree of episodes grown while they run, and a batcher.

:class:`BranchTree` starts roots in waves and forks from a fired turn's pre-turn state until
the leaf budget (:class:`~medgym.agents.evr.budget.LeafBudget`) is spent; the in-process engine
and verl's TQ worker both run it. :class:`BatchedPolicy` lets the tree's concurrent episodes
share one batched generation call per step, as a lockstep loop would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from medgym.agents.evr.budget import LeafBudget
from medgym.errors import ConfigError

if TYPE_CHECKING:
    from medgym.agents.policy import Generation, Policy
    from medgym.envs.session import EpisodeSession

__all__ = ["BatchedPolicy", "BranchTree", "RunLeaf"]

logger = logging.getLogger(__name__)


class BatchedPolicy:
    """A policy whose concurrent ``generate`` calls are answered by one batched call.

    Calls that arrive in the same event-loop step are gathered and sent together through
    :func:`~medgym.agents.evr.engine.generate_many` (the policy's ``generate_batch`` where it
    has one), so the episodes of a tree still share GPU batches when each runs as its own task.

    Args:
        policy: The wrapped policy.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name
        self._pending: list[tuple[EpisodeSession, asyncio.Future[Generation]]] = []

    async def generate(self, session: EpisodeSession) -> Generation:
        """The next turn of ``session``, from the batch of this event-loop step."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Generation] = loop.create_future()
        if not self._pending:
            loop.call_soon(lambda: loop.create_task(self._flush()))
        self._pending.append((session, future))
        return await future

    async def _flush(self) -> None:
        from medgym.agents.evr.engine import generate_many

        batch, self._pending = self._pending, []
        try:
            gens = await generate_many(self.policy, [s for s, _ in batch])
        except Exception as e:  # every waiting episode gets the error, not a hang
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), gen in zip(batch, gens, strict=True):
            if not future.done():
                future.set_result(gen)


RunLeaf = Callable[[int, Any, "BranchTree"], Awaitable[Any]]


class BranchTree:
    """The leaves of one question in branch mode, grown while the episodes run.

    The one scheduler of EVR branch mode, in process (:meth:`EVREngine.tree
    <medgym.agents.evr.engine.EVREngine.tree>`) and on verl (the TQ worker). Each of the n
    leaves is awaited with :meth:`leaf` ``(i)``. The first call starts the tree: a wave of
    roots; an episode whose turn fires calls :meth:`branch`, which starts forks from the
    pre-turn state (each a new episode); when no episode runs and leaves are left, the next
    wave starts (:class:`LeafBudget` decides how many). So exactly n episodes finish. One
    failure fails every leaf (verl then drops the uid) and cancels the episodes still running.

    Args:
        budget: The tree's leaf budget (``leaves`` = verl's n).
    """

    def __init__(self, budget: LeafBudget) -> None:
        self.budget = budget
        self._loop = asyncio.get_running_loop()
        self._results: list[asyncio.Future[Any]] = [
            self._loop.create_future() for _ in range(budget.leaves)
        ]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run_leaf: RunLeaf | None = None
        self._running = 0
        self.failed = False

    async def leaf(self, index: int, run_leaf: RunLeaf) -> Any:
        """Leaf ``index``'s finished output; the first call starts the tree with ``run_leaf``.

        Args:
            index: The session id (0 .. n-1).
            run_leaf: ``(leaf_id, snapshot_or_None, tree) -> output``: runs one episode, a root
                when the snapshot is ``None``, else a fork resumed from it.
        """
        if not 0 <= index < self.budget.leaves:
            raise ConfigError(f"leaf {index} outside the tree's {self.budget.leaves} leaves")
        if self._run_leaf is None:
            self._run_leaf = run_leaf
            self._wave()
        return await self._results[index]

    def branch(self, make_fork: Callable[[int], Any]) -> int:
        """Start the forks one firing may create; ``make_fork(j)`` builds fork ``j``'s state.

        Returns:
            How many forks were started (0 once the budget is spent).
        """
        ids = list(self.budget.fork()) if not self.failed else []
        for j, leaf_id in enumerate(ids):
            self._start(leaf_id, make_fork(j))
        return len(ids)

    def _wave(self) -> None:
        for leaf_id in self.budget.wave():
            self._start(leaf_id, None)

    def _start(self, leaf_id: int, snapshot: Any) -> None:
        self._running += 1
        task = self._loop.create_task(self._episode(leaf_id, snapshot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _episode(self, leaf_id: int, snapshot: Any) -> None:
        if self._run_leaf is None:
            raise ConfigError("BranchTree started without run_leaf")
        try:
            output = await self._run_leaf(leaf_id, snapshot, self)
        except BaseException as e:  # cancellation included: any failure drops the whole group
            self._fail(e if isinstance(e, Exception) else RuntimeError(f"episode ended: {e!r}"))
            return
        finally:
            self._running -= 1
        if not self._results[leaf_id].done():
            self._results[leaf_id].set_result(output)
        if self._running == 0 and self.budget.left and not self.failed:
            self._wave()

    def _fail(self, error: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        logger.error("branch tree failed: %r; the group is dropped", error)
        for fut in self._results:
            if not fut.done():
                fut.set_exception(error)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
