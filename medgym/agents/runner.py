"""``GroupRunner``: n episodes per sample over many samples, returned as :class:`Group`s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medgym.agents.evr.config import EVRConfig
from medgym.agents.evr.engine import EVREngine, generate_many
from medgym.agents.evr.stats import EVRStats
from medgym.agents.policy import Policy, run_episode
from medgym.core.sample import Sample
from medgym.core.trajectory import Group, write_groups
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import DEFAULT_PROFILE, ModelProfile, get_profile
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError

__all__ = ["GroupRunner", "RunStats"]


@dataclass
class RunStats:
    """Throughput of the last run."""

    episodes: int = 0
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def episodes_per_second(self) -> float:
        """Episodes finished per wall-clock second."""
        return self.episodes / self.seconds if self.seconds > 0 else 0.0


class GroupRunner:
    """Run ``n`` episodes of each sample with one policy.

    Args:
        config: Session configuration shared by every episode.
        profile: Model profile (name or object).
        n: Episodes per sample (the group size; GRPO's n).
        concurrency: Episodes in flight at once (matters for remote policies).
        progress: Show a rich progress bar.
        evr: Entropy-guided Visual Regrounding settings (``None`` or mode ``off``: plain
            rollouts). In ``branch`` mode each group holds ``evr.leaf_budget`` leaves of a
            rollout tree instead of ``n`` independent rollouts.
        branch_policy: Policy that resamples branched turns (see :class:`EVREngine`).

    Policies with a ``generate_batch(sessions)`` coroutine (e.g. :class:`HFPolicy`) are stepped
    in lock-step batches of up to ``concurrency`` sessions.

    Example:
        >>> from medgym.agents import GroupRunner, OraclePolicy
        >>> from medgym.data import load
        >>> groups = GroupRunner(n=2, progress=False).run(load("synthetic", num_samples=2),
        ...                                                OraclePolicy())
        >>> [len(g) for g in groups]
        [2, 2]
    """

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        profile: str | ModelProfile = DEFAULT_PROFILE,
        n: int = 4,
        concurrency: int = 32,
        progress: bool = True,
        evr: EVRConfig | None = None,
        branch_policy: Policy | None = None,
    ) -> None:
        if n < 1:
            raise ConfigError(f"n (episodes per sample) must be >= 1; got {n}")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1; got {concurrency}")
        self.config = config or SessionConfig()
        self.profile = get_profile(profile)
        self.n = n
        self.concurrency = concurrency
        self.progress = progress
        self.stats = RunStats()
        self.evr = evr if evr is not None and evr.mode != "off" else None
        self.evr_engine = (
            EVREngine(self.evr, branch_policy=branch_policy) if self.evr is not None else None
        )
        from medgym.tools import TOOLS

        self._tools = TOOLS

    def new_session(self, sample: Sample, k: int, policy_name: str) -> EpisodeSession:
        """The session for rollout ``k`` of ``sample`` (ids are deterministic)."""
        return EpisodeSession(
            sample,
            config=self.config,
            profile=self.profile,
            tools=self._tools,
            trajectory_id=f"{sample.id}#{k}",
            group_id=sample.id,
            policy=policy_name,
        )

    async def arun(self, samples: Sequence[Sample], policy: Policy) -> list[Group]:
        """Run every episode; groups come back in sample order, rollouts in ``k`` order.

        In EVR branch mode a group's leaves come in the order they finished. EVR counters in
        ``stats.extra`` are per run; the quantile threshold's history carries over.
        """
        start = time.perf_counter()
        if self.evr_engine is not None:
            self.evr_engine.stats = EVRStats()
        if self.evr_engine is not None and self.evr is not None and self.evr.mode == "branch":
            per_sample = await self._run_trees(samples, policy)
        elif self.evr_engine is None and hasattr(policy, "generate_batch"):
            per_sample = await self.run_sessions(samples, policy)
        else:
            per_sample = await self._run_each(samples, policy)
        episodes = sum(len(c) for c in per_sample)
        self.stats = RunStats(episodes=episodes, seconds=time.perf_counter() - start)
        if self.evr_engine is not None:
            evr_stats = self.evr_engine.stats.as_dict()
            self.stats.extra = {f"evr/{k}": v for k, v in evr_stats.items() if v is not None}
        return [
            Group(id=sample.id, sample=sample, trajectories=[s.trajectory() for s in chunk])
            for sample, chunk in zip(samples, per_sample, strict=True)
        ]

    async def _run_each(
        self, samples: Sequence[Sample], policy: Policy
    ) -> list[list[EpisodeSession]]:
        sem = asyncio.Semaphore(self.concurrency)
        progress, task = self._progress(len(samples) * self.n, policy.name)
        engine = self.evr_engine

        async def one(sample: Sample, k: int) -> EpisodeSession:
            async with sem:
                session = self.new_session(sample, k, policy.name)
                if engine is not None:
                    session = await engine.reground(policy, session)
                else:
                    session = await run_episode(policy, session)
            if progress is not None:
                progress.advance(task)
            return session

        try:
            sessions = await asyncio.gather(*(one(s, k) for s in samples for k in range(self.n)))
        finally:
            if progress is not None:
                progress.stop()
        return [sessions[i * self.n : (i + 1) * self.n] for i in range(len(samples))]

    async def run_sessions(
        self, samples: Sequence[Sample], policy: Policy
    ) -> list[list[EpisodeSession]]:
        """Lock-step: every unfinished session advances one turn per batched call.

        Returns the finished sessions themselves (``n`` per sample, in sample order), for callers
        that need more than the trajectories (a trainer re-encoding the conversations). The
        policy needs ``generate_batch``; ``stats`` are not updated (:meth:`arun` does that).
        """
        per_sample = [[self.new_session(s, k, policy.name) for k in range(self.n)] for s in samples]
        active = [s for chunk in per_sample for s in chunk]
        while active:
            for i in range(0, len(active), self.concurrency):
                chunk = active[i : i + self.concurrency]
                for session, gen in zip(chunk, await generate_many(policy, chunk), strict=True):
                    session.apply_turn(
                        gen.text, token_ids=gen.token_ids, token_logprobs=gen.logprobs,
                        token_entropies=gen.entropies,
                    )  # fmt: skip
            active = [s for s in active if not s.done]
        return per_sample

    async def _run_trees(
        self, samples: Sequence[Sample], policy: Policy
    ) -> list[list[EpisodeSession]]:
        engine = self.evr_engine
        if engine is None:
            raise ConfigError("EVR branch mode needs an EVR config")
        sem = asyncio.Semaphore(max(1, self.concurrency // engine.config.leaf_budget))

        def factory(sample: Sample, k: int) -> EpisodeSession:
            return self.new_session(sample, k, policy.name)

        async def one(sample: Sample) -> list[EpisodeSession]:
            async with sem:
                return await engine.tree(sample, policy, factory)

        return list(await asyncio.gather(*(one(s) for s in samples)))

    def run(
        self, samples: Sequence[Sample], policy: Policy, *, out: str | Path | None = None
    ) -> list[Group]:
        """Synchronous :meth:`arun`; writes JSONL to ``out`` when given."""
        groups = asyncio.run(self.arun(samples, policy))
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            write_groups(groups, out)
        return groups

    def _progress(self, total: int, label: str):  # type: ignore[no-untyped-def]
        if not self.progress:
            return None, None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        if not Console().is_terminal:  # a log file: a transient bar would leave blank lines
            return None, None

        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        task = progress.add_task(label, total=total)
        progress.start()
        return progress, task
