"""``GroupRunner``: n episodes per sample over many samples, returned as :class:`Group`s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medgym.agents.policy import Policy, run_episode
from medgym.core.sample import Sample
from medgym.core.trajectory import Group, write_groups
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import ModelProfile, get_profile
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
        profile: str | ModelProfile = "qwen2.5-vl",
        n: int = 4,
        concurrency: int = 32,
        progress: bool = True,
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
        """Run every episode; groups come back in sample order, rollouts in ``k`` order."""
        sem = asyncio.Semaphore(self.concurrency)
        total = len(samples) * self.n
        start = time.perf_counter()
        progress, task = self._progress(total, policy.name)

        async def one(sample: Sample, k: int) -> EpisodeSession:
            async with sem:
                session = await run_episode(policy, self.new_session(sample, k, policy.name))
            if progress is not None:
                progress.advance(task)
            return session

        try:
            sessions = await asyncio.gather(
                *(one(s, k) for s in samples for k in range(self.n))
            )
        finally:
            if progress is not None:
                progress.stop()
        self.stats = RunStats(episodes=total, seconds=time.perf_counter() - start)
        groups = []
        for i, sample in enumerate(samples):
            chunk = sessions[i * self.n : (i + 1) * self.n]
            groups.append(
                Group(id=sample.id, sample=sample, trajectories=[s.trajectory() for s in chunk])
            )
        return groups

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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

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
