"""Bounded work queues: decoding cannot starve the cheap calls, and a flood gets 503, not a wait.

The server runs slow steps on worker threads. One shared pool let eight heavy ``register`` calls
(decoding large images) hold every thread, so a cheap call waited seconds behind them, and the
queue in front of the pool grew without bound. Two queues now:

- ``heavy`` (decoding, uploads, turns): at most ``heavy_threads`` at once;
- ``light`` (rendering views of images already decoded): the rest of the pool.

A request that would wait behind ``max_queued`` others is refused at once with
:class:`ServerBusy` (503 and ``Retry-After``): clients back off instead of piling up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from medgym.errors import MedGymError

__all__ = ["ServerBusy", "WorkQueue"]

T = TypeVar("T")


class ServerBusy(MedGymError):
    """Every worker of a queue is busy and its waiting line is full (answered 503)."""

    retry_after = 1


class WorkQueue:
    """Runs blocking functions on worker threads, ``workers`` at once, ``max_queued`` waiting.

    Args:
        name: The queue's name (in the 503's message).
        workers: Threads it may use at once (>= 1).
        max_queued: Calls allowed to wait for a thread; one more is a :class:`ServerBusy`.
    """

    def __init__(self, name: str, workers: int, max_queued: int) -> None:
        self.name = name
        self.workers = max(1, workers)
        self.max_queued = max(0, max_queued)
        self._limiter: anyio.CapacityLimiter | None = None
        self.admitted = 0  # running or waiting; counted here (anyio acquires after a checkpoint)

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The queue's limiter (created in the running event loop on first use)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread of this queue.

        Raises:
            ServerBusy: All workers busy and ``max_queued`` calls already waiting.
        """
        if self.admitted >= self.workers + self.max_queued:
            raise ServerBusy(
                f"the server is busy ({self.name}: {self.workers} running, "
                f"{self.admitted - self.workers} waiting); retry after {ServerBusy.retry_after} s"
            )
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self.admitted -= 1
