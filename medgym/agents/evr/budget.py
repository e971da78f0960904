"""``LeafBudget``: how a branch-mode tree spends its leaves (one rule for every runner).

The in-process engine (lock-step batches) and the verl worker (one asyncio task per episode)
both grow trees under the same rule: roots start ``initial_rollouts`` at a time, a new wave
only once no episode of the tree is running, each firing grants at most ``num_branches - 1``
forks, and the tree ends with exactly ``leaves`` finished episodes.
"""

from __future__ import annotations

from medgym.errors import ConfigError

__all__ = ["LeafBudget"]


class LeafBudget:
    """Hands out leaf ids ``0 .. leaves - 1`` to roots and forks.

    Args:
        leaves: Leaves the tree ends with (the group size, GRPO's n).
        initial_rollouts: Roots per wave.
        num_branches: M: a firing keeps its rollout and adds up to ``M - 1`` forks.

    Example:
        >>> b = LeafBudget(4, initial_rollouts=2, num_branches=3)
        >>> list(b.wave()), list(b.fork()), list(b.wave())
        ([0, 1], [2, 3], [])
    """

    def __init__(self, leaves: int, *, initial_rollouts: int, num_branches: int) -> None:
        if leaves < 1 or initial_rollouts < 1 or num_branches < 2:
            raise ConfigError(
                "LeafBudget needs leaves >= 1, initial_rollouts >= 1 and num_branches >= 2; got "
                f"{leaves}, {initial_rollouts}, {num_branches}"
            )
        self.leaves = leaves
        self.initial_rollouts = initial_rollouts
        self.num_branches = num_branches
        self.allocated = 0

    @property
    def left(self) -> int:
        """Leaf ids not yet handed out."""
        return self.leaves - self.allocated

    def _take(self, k: int) -> range:
        k = max(0, min(k, self.left))
        ids = range(self.allocated, self.allocated + k)
        self.allocated += k
        return ids

    def wave(self) -> range:
        """Ids of the next wave of roots (call when no episode of the tree is running)."""
        return self._take(self.initial_rollouts)

    def fork(self) -> range:
        """Ids of the forks one firing may create (empty once the budget is spent)."""
        return self._take(self.num_branches - 1)
