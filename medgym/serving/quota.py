"""Per-client budgets of heavy work: one client's decodes cannot take the server from the others.

The heavy queue (:mod:`medgym.serving.work`) bounds how many decodes, uploads, turn replays and
large renders run at once, but not whose. A client that keeps it busy (five attackers in
``benchmarks/bench_server.py``; a misconfigured rollout worker registering a new 2048 px image per
call) gets every heavy thread, and the CPU they burn is CPU the cheap calls of everyone else
wait for. :class:`ClientBudgets` gives each client a token bucket of heavy CPU time: it earns
``rate`` CPU-seconds per second, banks at most ``burst`` of them, and each heavy job it starts
is charged the CPU time the job used (:func:`thread_cpu`: its thread's, plus a worker
process's). A client in debt is refused at once with :class:`OverQuota` (429 and
``Retry-After``: how long until it has earned its deficit back), before anything is decoded.

A client is the address the request came from (``scope["client"]``, which uvicorn's
``--proxy-headers`` sets from ``X-Forwarded-For`` behind a trusted proxy). On one host every
client has the same address and shares one bucket; only heavy work is charged, so clients that
only render views of images already decoded are never refused. The table of buckets is an LRU
of at most ``max_clients`` entries (a flood of addresses cannot grow it).
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any

from medgym.errors import ConfigError, MedGymError
from medgym.serving.security import ASGIApp, Receive, Send

__all__ = [
    "CLIENT", "ClientBudgets", "ClientKeyMiddleware", "OverQuota", "charge_elsewhere", "thread_cpu",
]  # fmt: skip

CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("medgym_client", default=None)
"""The client of the request being served (set by :class:`ClientKeyMiddleware`)."""


_ELSEWHERE = threading.local()


def charge_elsewhere(seconds: float) -> None:
    """Count ``seconds`` of CPU that another process spent for this thread's job.

    :func:`thread_cpu` includes them: a job whose decode ran in a worker process
    (:mod:`medgym.serving.offload`) is charged that work, not only its own thread's wait.
    """
    _ELSEWHERE.seconds = getattr(_ELSEWHERE, "seconds", 0.0) + seconds


def thread_cpu() -> float:
    """This thread's CPU time plus what :func:`charge_elsewhere` added (a running total)."""
    return time.thread_time() + getattr(_ELSEWHERE, "seconds", 0.0)


class OverQuota(MedGymError):
    """The client used up its heavy-work budget (answered 429 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClientBudgets:
    """Token buckets of heavy CPU-seconds, one per client.

    Args:
        rate: CPU-seconds of heavy work each client earns per second (> 0).
        burst: Most CPU-seconds a client may bank (>= ``rate``); a new client starts full.
        max_clients: Buckets kept (least recently used dropped first; a dropped client starts
            full again, which only ever favours it).
        clock: Monotonic clock in seconds (tests pass a fake one).

    Raises:
        ConfigError: A rate, burst or table size out of range.
    """

    def __init__(
        self, rate: float, burst: float, *, max_clients: int = 4096, clock: Any = time.monotonic
    ) -> None:
        if not (math.isfinite(rate) and rate > 0 and math.isfinite(burst) and burst >= rate):
            raise ConfigError(
                f"need a finite rate > 0 and burst >= rate; got rate={rate}, burst={burst}"
            )
        if max_clients < 1:
            raise ConfigError(f"max_clients must be >= 1; got {max_clients}")
        self.rate, self.burst, self.max_clients = float(rate), float(burst), max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key: tokens, t
        self._lock = threading.Lock()

    def _refilled(self, key: str) -> float:
        """The client's tokens now (the lock held); the entry moves to the recent end."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return tokens

    def available(self, key: str) -> float:
        """CPU-seconds the client may still start heavy work with (negative: in debt)."""
        with self._lock:
            return self._refilled(key)

    def check(self, key: str | None) -> None:
        """Refuse a client in debt (no client: never refused).

        Raises:
            OverQuota: The client's bucket is below zero; ``retry_after`` says when it will not
                be.
        """
        if key is None:
            return
        tokens = self.available(key)
        if tokens < 0:
            wait = max(1, math.ceil(-tokens / self.rate))
            raise OverQuota(
                f"client {key} used its share of heavy work (decoding, uploads, large renders: "
                f"{self.rate:g} CPU-s per second, {self.burst:g} s banked at most); retry "
                f"after {wait} s",
                retry_after=wait,
            )

    def charge(self, key: str | None, seconds: float) -> None:
        """Take ``seconds`` of CPU from the client's bucket (it may go into debt)."""
        if key is None or seconds <= 0:
            return
        with self._lock:
            tokens = self._refilled(key)
            self._buckets[key] = (tokens - seconds, self._buckets[key][1])


class ClientKeyMiddleware:
    """Record who sent the request (:data:`CLIENT`) for the work queues to charge.

    Args:
        app: The wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Set :data:`CLIENT` to the request's client address, then run the app."""
        client = scope.get("client")
        token = CLIENT.set(str(client[0]) if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT.reset(token)
