"""The metrics a medgym verl run is watched by: per rollout, per uid group, per step.

verl 0.9.1's v1 trainer logs ``reward_extra_info`` only for validation, so the TQ worker also
writes one JSONL record per scored group to ``medgym.metrics_dir`` (one file per worker
process): reward and its parts, pseudo-label confidence, tool-call rate, format and tool errors,
EVR fires, branches, regrounds and flips. Summarise a run's records per training step with::

    python -m medgym.integrations.verl.metrics checkpoints/medgym/synthetic-grpo/medgym_metrics
"""

from __future__ import annotations

import argparse
import os
import socket
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medgym.core.trajectory import Trajectory
from medgym.integrations.metrics import MetricsSink
from medgym.integrations.scoring import GroupScore
from medgym.integrations.verl.evr import EVR_KEY
from medgym.rewards.group import GroupRewardResult

__all__ = ["group_record", "read_records", "rollout_metrics", "sink_for", "summarize"]

_SESSION_METRICS = ("turns", "tool_calls", "tool_errors", "format_errors")
#: Columns of the per-step summary, in order.
SUMMARY_KEYS = (
    "reward", "part/accuracy", "group/confidence", "tool_call_rate", "medgym/tool_calls",
    "medgym/tool_errors", "medgym/format_errors", "evr/fire_rate", "evr/branches",
    "evr/regrounds", "evr/flip_rate",
)  # fmt: skip


def rollout_metrics(extra_fields: Mapping[str, Any]) -> dict[str, float]:
    """One rollout's session and EVR counters, flat (``medgym/...``, ``evr/...``)."""
    out: dict[str, float] = {}
    session = extra_fields.get("medgym_metrics") or {}
    for key in _SESSION_METRICS:
        if key in session:
            out[f"medgym/{key}"] = float(session[key])
    for key, value in (extra_fields.get(EVR_KEY) or {}).items():
        out[f"evr/{key}"] = float(value)
    return out


def _flips(fields: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(forks, forks whose answer differs from the rollout they left) among a group's leaves."""
    trajs = [
        Trajectory.model_validate_json(f["medgym_trajectory"])
        for f in fields
        if isinstance(f.get("medgym_trajectory"), str)
    ]
    answers = {t.id: t.answer for t in trajs}
    pairs = [(t.answer, answers[t.parent_id]) for t in trajs if t.parent_id in answers]
    return len(pairs), sum(a != b for a, b in pairs)


def group_record(
    uid: str,
    result: GroupScore | GroupRewardResult,
    extra_fields: Sequence[Mapping[str, Any]],
    **meta: Any,
) -> dict[str, Any]:
    """One scored group as a flat record: group means of rewards, parts and rollout metrics."""
    rec: dict[str, Any] = {"uid": uid, **meta, "n": len(extra_fields)}
    rec["reward"] = float(np.mean(result.rewards)) if len(result.rewards) else 0.0
    for key, values in result.parts.items():
        rec[f"part/{key}"] = float(np.mean(values))
    for key, value in result.diagnostics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            rec[f"group/{key}"] = float(value)
    per = [rollout_metrics(f) for f in extra_fields]
    for key in sorted({k for p in per for k in p}):
        rec[key] = float(np.mean([p.get(key, 0.0) for p in per]))
    rec["tool_call_rate"] = float(np.mean([p.get("medgym/tool_calls", 0.0) > 0 for p in per]))
    if any("evr/turns_scored" in p for p in per):
        scored = sum(p.get("evr/turns_scored", 0.0) for p in per)
        rec["evr/fire_rate"] = sum(p.get("evr/fires", 0.0) for p in per) / scored if scored else 0.0
        # trajectories are parsed again only in groups that have forks
        # compared: forks (branch mode) or withheld answers (reground mode); flipped: how many
        # of them ended with a different answer
        compared, flipped = (
            _flips(extra_fields) if any(p.get("evr/forked") for p in per) else (0, 0)
        )
        regrounds = sum(p.get("evr/regrounds", 0.0) for p in per)
        if not compared and regrounds:
            compared = int(regrounds)
            flipped = int(sum(p.get("evr/flipped", 0.0) for p in per))
        rec["evr/compared"] = compared
        rec["evr/flip_rate"] = flipped / compared if compared else None
    return rec


def sink_for(metrics_dir: str | os.PathLike[str]) -> MetricsSink:
    """This process's JSONL file under ``metrics_dir`` (one per host and process)."""
    return MetricsSink(Path(metrics_dir) / f"groups-{socket.gethostname()}-{os.getpid()}.jsonl")


def read_records(metrics_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every group record under ``metrics_dir``."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(metrics_dir).glob("groups-*.jsonl")):
        out.extend(MetricsSink(path).read())
    return out


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per training step (validation apart): the mean of each :data:`SUMMARY_KEYS` column."""
    by_step: dict[tuple[bool, int], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_step[(bool(r.get("validate")), int(r.get("global_steps", 0)))].append(r)
    rows = []
    for (validate, step), recs in sorted(by_step.items()):
        row: dict[str, Any] = {"step": step, "validate": validate, "groups": len(recs)}
        for key in SUMMARY_KEYS:
            values = [float(r[key]) for r in recs if r.get(key) is not None]
            row[key] = float(np.mean(values)) if values else None
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Print the per-step summary of a run's medgym metrics (metrics as rows, steps as columns)."""
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description="per-step medgym metrics of a verl run")
    p.add_argument("metrics_dir", help="the run's medgym.metrics_dir")
    p.add_argument("--last", type=int, default=8, help="show the last N steps (default 8)")
    a = p.parse_args(argv)
    rows = summarize(read_records(a.metrics_dir))[-max(1, a.last) :]
    if not rows:
        raise SystemExit(f"no group records (groups-*.jsonl) under {a.metrics_dir}")
    table = Table(title="medgym metrics per step", caption=str(a.metrics_dir))
    table.add_column("metric")
    for row in rows:
        table.add_column(f"{'val ' if row['validate'] else ''}{row['step']}", justify="right")
    table.add_row("groups", *(str(row["groups"]) for row in rows))
    for key in SUMMARY_KEYS:
        table.add_row(key, *("-" if row[key] is None else f"{row[key]:.3f}" for row in rows))
    Console().print(table)


if __name__ == "__main__":
    main()
