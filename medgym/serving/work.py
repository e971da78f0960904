"""Bounded work queues: decoding cannot starve the cheap calls, and a flood gets 503, not a wait.

The server runs slow steps on worker threads. One shared pool let eight heavy ``register`` calls
(decoding large images) hold every thread, so a cheap call waited seconds behind them, and the
queue in front of the pool grew without bound. Two queues now:

- ``heavy`` (decoding, uploads, turns): at most ``heavy_threads`` at once;
- ``light`` (rendering views of images already decoded): the rest of the pool.

A request that would wait behind ``max_queued`` others is refused at once with
:class:`ServerBusy` (503 and ``Retry-After``): clients back off instead of piling up. With
:class:`~medgym.serving.quota.ClientBudgets` a queue also charges each client the CPU time of
its jobs and refuses a client whose share is spent (429), so one client cannot keep the heavy
threads to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from medgym.errors import MedGymError
from medgym.serving.quota import CLIENT, ClientBudgets, OverQuota, thread_cpu

__all__ = ["MAX_HELD", "ServerBusy", "WorkQueue"]

MAX_HELD = 256
"""Most 429s a queue holds at once; past it they are sent at once."""

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
        nice: Above 0, the queue has threads of its own at this lower CPU priority (Linux
            niceness, per thread), so the OS runs the other queues' work first.
        budgets: Per-client CPU budgets charged by this queue's jobs (``None``: no quota).
        refusal_delay: Seconds a refused client waits for its 429 (at most its
            ``Retry-After``; at most :data:`MAX_HELD` held at once, then at once): refused in a
            millisecond, a client in a loop came straight back, hundreds of times a second.
    """

    def __init__(
        self, name: str, workers: int, max_queued: int, *, nice: int = 0,
        budgets: ClientBudgets | None = None, refusal_delay: float = 0.0,
    ) -> None:  # fmt: skip
        self.name = name
        self.budgets = budgets
        self.refusal_delay = refusal_delay
        self.held = 0  # refusals being held now
        self.workers = max(1, workers)
        self.max_queued = max(0, max_queued)
        self.nice = nice
        self._limiter: anyio.CapacityLimiter | None = None
        self._executor: ThreadPoolExecutor | None = None
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
            OverQuota: The request's client has spent its share of this queue's work.
            ServerBusy: All workers busy and ``max_queued`` calls already waiting.
        """
        if self.budgets is not None:
            return await self._run_charged(self.budgets, fn, *args)
        return await self._run(fn, *args)

    async def _run_charged(self, budgets: ClientBudgets, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`_run`, refused when the client's budget is spent, charged its CPU time."""
        client = CLIENT.get()
        try:
            budgets.check(client)
        except OverQuota as e:
            delay = min(self.refusal_delay, e.retry_after)
            if delay > 0 and self.held < MAX_HELD:
                self.held += 1
                try:
                    await anyio.sleep(delay)
                finally:
                    self.held -= 1
            raise
        spent = [0.0]

        def timed() -> T:
            start = thread_cpu()
            try:
                return fn(*args)
            finally:
                spent[0] = thread_cpu() - start

        try:
            return await self._run(timed)
        finally:
            budgets.charge(client, spent[0])

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.admitted >= self.workers + self.max_queued:
            raise ServerBusy(
                f"the server is busy ({self.name}: {self.workers} running, "
                f"{self.admitted - self.workers} waiting); retry after {ServerBusy.retry_after} s"
            )
        self.admitted += 1
        try:
            if self.nice > 0:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._niced_pool(), fn, *args)
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self.admitted -= 1

    def _niced_pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.workers, thread_name_prefix=f"medgym-{self.name}",
                initializer=_lower_priority, initargs=(self.nice,),
            )  # fmt: skip
        return self._executor


def _lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority (any user may; where the OS refuses, keep it)."""
    # not Linux, or not allowed: the thread keeps the same priority as the rest
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
