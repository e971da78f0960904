"""The policy protocol: a session's conversation and tools in, one generated turn out."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from medgym.envs.session import EpisodeSession

__all__ = ["Generation", "Policy", "run_episode"]


@dataclass(frozen=True)
class Generation:
    """One generated turn.

    Attributes:
        text: The turn's text (tool calls and/or answer).
        token_ids: Generated token ids, when the policy has a tokenizer.
        logprobs: Log-probability of each generated token, when known.
        entropies: Entropy of each next-token distribution (exact or estimated), when known.
    """

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    entropies: list[float] | None = None


@runtime_checkable
class Policy(Protocol):
    """Anything that produces the next turn of an episode.

    Model-backed policies read ``session.conversation(fmt)`` and ``session.tool_schemas`` (and
    ``session.profile`` for stop strings); scripted policies may also read the sample and the
    views' pixels. ``generate`` is async so that remote policies do not block an event loop.
    """

    name: str

    async def generate(self, session: EpisodeSession) -> Generation:
        """Return the next turn for ``session``."""


async def run_episode(policy: Policy, session: EpisodeSession) -> EpisodeSession:
    """Drive ``session`` with ``policy`` until it terminates or is truncated.

    When the session's backend blocks (a tool server), each turn is applied on a worker thread
    so that many episodes share one event loop without waiting on each other's HTTP calls;
    in-process tools (microseconds of geometry) run inline, where a thread hop would cost more.
    """
    while not session.done:
        gen = await policy.generate(session)
        apply = functools.partial(
            session.apply_turn,
            gen.text,
            token_ids=gen.token_ids,
            token_logprobs=gen.logprobs,
            token_entropies=gen.entropies,
        )
        if session.backend.blocking:
            await asyncio.to_thread(apply)
        else:
            apply()
    return session
