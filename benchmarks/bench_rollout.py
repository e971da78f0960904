"""Rollout costs: EVR's overhead on HF generation, and scripted rollout throughput.

1. EVR overhead: the tiny Qwen2.5-VL (built into a temp dir) generates turns with
   ``HFPolicy``; the EVR work per turn (token pieces, decision mask, windowed signal, threshold)
   is timed on the same generations. Goal: <= 5% of generation time.
2. Throughput: ``GroupRunner`` with scripted policies on the ``synthetic`` set, with and without
   EVR branch mode, against the bare policy calls. The env must not be the bottleneck.

Run: ``python benchmarks/bench_rollout.py [--turns 32] [--samples 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console
from rich.table import Table

from medgym.agents import GroupRunner, OraclePolicy, RandomZoomPolicy
from medgym.agents.evr import EVRConfig, RolloutSignal, Threshold, turn_signal
from medgym.data import load
from medgym.envs.session import EpisodeSession


def evr_overhead(turns: int) -> tuple[Table, float]:
    import torch

    from medgym.agents.hf_policy import HFPolicy, SamplingConfig
    from medgym.agents.tiny_vlm import TINY_PROFILE, build_tiny_vlm

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        policy = HFPolicy.from_pretrained(
            build_tiny_vlm(tmp), sampling=SamplingConfig(max_new_tokens=64), seed=0
        )
        samples = load("synthetic", num_samples=turns, seed=0)
        sessions = [EpisodeSession(s, profile=TINY_PROFILE) for s in samples]
        policy.generate_batch_sync(sessions[:1])  # warm-up
        policy.generate_seconds = 0.0
        start = time.perf_counter()
        gens = [policy.generate_batch_sync([s])[0] for s in sessions]
        gen_wall = time.perf_counter() - start
        tok = policy.processor.tokenizer
        start = time.perf_counter()
        for g in gens:
            tok.batch_decode([[t] for t in g.token_ids])
        pieces_s = time.perf_counter() - start
        cfg = EVRConfig(warmup=4)
        threshold = Threshold(cfg)
        start = time.perf_counter()
        for g in gens:
            threshold.fires(turn_signal(g, cfg, RolloutSignal()))
        signal_s = time.perf_counter() - start
    tokens = sum(len(g.token_ids or []) for g in gens)
    table = Table(title=f"EVR overhead on HF generation ({turns} turns, {tokens} tokens, 1 core)")
    for col in ("part", "ms / turn", "% of generation"):
        table.add_column(col, justify="right" if col != "part" else "left")
    per = 1000 / len(gens)
    table.add_row("generation (HFPolicy, tiny model)", f"{gen_wall * per:.2f}", "100.0")
    table.add_row(
        "token pieces (decode)", f"{pieces_s * per:.3f}", f"{100 * pieces_s / gen_wall:.2f}"
    )
    table.add_row("signal + threshold", f"{signal_s * per:.3f}", f"{100 * signal_s / gen_wall:.2f}")
    total = 100 * (pieces_s + signal_s) / gen_wall
    table.add_row("EVR total (goal <= 5%)", "", f"{total:.2f}")
    return table, gen_wall * per


class _Trace:
    """Oracle turns with constant per-token entropies (EVR fires on zoom turns)."""

    name = "oracle+trace"

    def __init__(self) -> None:
        self.oracle = OraclePolicy()

    async def generate(self, session):  # type: ignore[no-untyped-def]
        from medgym.agents.entropy import TokenGeneration

        gen = await self.oracle.generate(session)
        h = 2.0 if "tool_call" in gen.text else 0.1
        return TokenGeneration(gen.text, entropies=[h] * 8, pieces=[gen.text[:1]] * 8)


def throughput(num_samples: int) -> tuple[Table, float]:
    samples = load("synthetic", num_samples=num_samples, seed=0)
    table = Table(title=f"Scripted rollouts ({num_samples} samples x 4, 1 core)")
    for col in ("run", "episodes/s", "policy share"):
        table.add_column(col, justify="right" if col != "run" else "left")
    env_ms = 0.0
    for policy in (OraclePolicy(), RandomZoomPolicy()):
        runner = GroupRunner(n=4, progress=False)
        runner.run(samples[:4], policy)  # warm the image cache
        runner.run(samples, policy)
        sessions = [runner.new_session(s, k, policy.name) for s in samples for k in range(4)]
        start = time.perf_counter()
        for s in sessions:  # bare policy calls on fresh sessions: the policy's own cost
            asyncio.run(policy.generate(s))
        bare = time.perf_counter() - start
        share = bare / runner.stats.seconds if runner.stats.seconds else 0.0
        table.add_row(policy.name, f"{runner.stats.episodes_per_second:,.0f}", f"{share:.0%}")
        if isinstance(policy, OraclePolicy):  # two turns per episode, policy cost ~0
            env_ms = 1000 * runner.stats.seconds / (2 * runner.stats.episodes)
    evr = EVRConfig(threshold_kind="absolute", threshold=1.0, leaf_budget=4, initial_rollouts=2)
    runner = GroupRunner(n=4, progress=False, evr=evr)
    runner.run(samples, _Trace())
    rate = runner.stats.extra.get("evr/fire_rate", 0.0)
    table.add_row(f"oracle + EVR branch (fire rate {rate:.0%})",
                  f"{runner.stats.episodes_per_second:,.0f}", "")  # fmt: skip
    return table, env_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=32)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    console = Console()
    table, gen_ms = evr_overhead(args.turns)
    console.print(table)
    table, env_ms = throughput(args.samples)
    console.print(table)
    console.print(
        f"env cost per turn {env_ms:.2f} ms = {100 * env_ms / gen_ms:.1f}% of one tiny-model "
        f"turn ({gen_ms:.1f} ms); real VLMs generate far slower, so the env is not the bottleneck"
    )


if __name__ == "__main__":
    main()
