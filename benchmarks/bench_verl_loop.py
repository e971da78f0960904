"""verl glue costs on CPU: the medgym agent loop and EVR vs verl's stock ToolAgentLoop.

Every episode is the same two turns (zoom, then answer) from a scripted server, so generation
costs nothing and the table shows what the glue adds per episode: chat-template tokenization of
the crop, the session (parse, tool, render), and EVR's per-turn work (token pieces, signal,
threshold; in branch mode a copy of verl's AgentData per turn).

1. Agent loops alone: verl's ``ToolAgentLoop`` with medgym's ``BaseTool`` adapters (baseline),
   the medgym loop with EVR off, and with EVR reground on (a threshold that never fires).
2. Whole groups through verl's own TQ worker code (``_run_prompt`` + postprocess, TransferQueue
   in memory): n=4 plain leaves vs a branch tree that never fires vs one that forks at every
   root (2 roots + 2 forks).

Run: ``python benchmarks/bench_verl_loop.py [--episodes 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console
from rich.table import Table

from medgym.data import load

ZOOM = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 224, 224]}}</tool_call>'
ANSWER = "<answer>left</answer>"
NEVER = {"threshold_kind": "absolute", "threshold": 1e9}
ALWAYS_ROOT = {"threshold_kind": "absolute", "threshold": 1.0, "gamma": 0.0, "window": 1}
REPO = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], Awaitable[Any]], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs (after one warm-up)."""

    async def go() -> list[float]:
        await fn()
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            await fn()
            out.append(time.perf_counter() - t0)
        return out

    return statistics.median(asyncio.run(go()))


def loops(processor: Any, kwargs: dict[str, Any], repeats: int) -> list[tuple[str, float]]:
    from verl.experimental.agent_loop.agent_loop import ToolListWrap
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from verl.tools.tool_registry import initialize_tools_from_config

    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
    from medgym.integrations.verl.testing import (
        ScriptedServer,
        agent_loop_kwargs,
        minimal_trainer_config,
    )

    cfg = minimal_trainer_config(medgym={"reward": "majority"})
    with contextlib.redirect_stdout(io.StringIO()):  # verl prints every tool schema it loads
        tools = initialize_tools_from_config(str(REPO / "tools" / "verl_zoom.yaml"))
    common = agent_loop_kwargs(cfg, processor)

    def episode(make: Callable[[Any], Any]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            server = ScriptedServer(processor.tokenizer, [ZOOM, ANSWER], logprob=-0.5)
            return await make(server).run({"temperature": 1.0}, **kwargs)

        return run

    session = {"tools": ["zoom_in", "crop", "reground"], "max_turns": 4}
    cases = {
        "verl ToolAgentLoop + medgym BaseTools": lambda s: ToolAgentLoop(
            server_manager=s, tools=ToolListWrap(tools), **common
        ),
        "medgym agent loop, EVR off": lambda s: MedgymAgentLoop(
            server_manager=s, session_config=session, **common
        ),
        "medgym agent loop, EVR reground (no fire)": lambda s: MedgymAgentLoop(
            server_manager=s, session_config=session, evr={"mode": "reground", **NEVER}, **common
        ),
    }
    return [(name, timed(episode(make), repeats)) for name, make in cases.items()]


def groups(processor: Any, kwargs: dict[str, Any], repeats: int) -> list[tuple[str, float]]:
    from medgym.integrations.verl.testing import (
        ScriptedServer,
        minimal_trainer_config,
        offline_tq_worker,
    )

    base = {
        "_target_": "medgym.integrations.verl.agent_loop.MedgymAgentLoop",
        "_convert_": "all",
        "session_config": {"tools": ["zoom_in"], "max_turns": 4},
    }
    entries = [
        {**base, "name": "plain"},
        {**base, "name": "never", "evr": {"mode": "branch", "initial_rollouts": 2, **NEVER}},
        {**base, "name": "fork", "evr": {"mode": "branch", "initial_rollouts": 2, **ALWAYS_ROOT}},
    ]

    def text(call: dict[str, Any]) -> str:
        hot = call["sampling_params"]["temperature"] != 1.0
        return ANSWER if hot or len(call["images"]) > 1 else ZOOM

    def logprob(t: str) -> float:
        return -3.0 if t == ZOOM else -0.1

    out = []
    trajectory = {"step": 1, "sample_index": 0, "rollout_n": 0, "validate": False}
    for entry in entries:
        server = ScriptedServer(processor.tokenizer, text, logprob=logprob)
        cfg = minimal_trainer_config(medgym={"reward": "majority"})
        with offline_tq_worker(cfg, server, processor, agent_loops=entries) as (w, _):

            async def run(w: Any = w, name: str = str(entry["name"])) -> None:
                prompt = {"uid": "u", "agent_name": name, "global_steps": 1, "index": 0, **kwargs}
                await w._run_prompt(prompt, {"temperature": 1.0}, trajectory)

            label = {"plain": "n=4 plain episodes", "never": "n=4 branch tree, no fire",
                     "fork": "n=4 branch tree, 2 roots + 2 forks"}[str(entry["name"])]  # fmt: skip
            out.append((label, timed(run, repeats)))
    return out


def table(title: str, rows: list[tuple[str, float]]) -> Table:
    t = Table(title=title)
    for col, justify in (("path", "left"), ("median ms", "right"), ("ratio", "right")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    base = rows[0][1]
    for name, s in rows:
        t.add_row(name, f"{s * 1e3:.1f}", f"{s / base:.2f}x")
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=20, help="timed repeats per row")
    a = p.parse_args()
    logging.disable(logging.WARNING)  # verl and Ray log every agent loop they build
    warnings.filterwarnings("ignore", message=".*engine is not available")
    from transformers import AutoProcessor

    from medgym.agents.tiny_vlm import build_tiny_vlm
    from medgym.agents.tiny_vlm.processor import register_processor
    from medgym.integrations.verl.testing import row_kwargs

    register_processor()
    with tempfile.TemporaryDirectory() as tmp:
        processor = AutoProcessor.from_pretrained(build_tiny_vlm(Path(tmp)))
    kwargs = row_kwargs(load("synthetic", num_samples=1)[0])
    console = Console()
    title = "one episode (zoom + answer), per agent loop"
    console.print(table(title, loops(processor, kwargs, a.episodes)))
    title = "one group through verl's TQ worker code"
    console.print(table(title, groups(processor, kwargs, a.episodes)))


if __name__ == "__main__":
    main()
