"""Compare two evaluation runs metric by metric (``medgym compare DIR_A DIR_B``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medgym.errors import DatasetError

__all__ = ["compare_runs"]


def _results(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{p}: expected the results.json of a medgym eval run: {e}") from e


def compare_runs(a: str | Path, b: str | Path) -> list[dict[str, Any]]:
    """One row per (condition, metric) present in either run: values, difference, overlap.

    ``overlap`` tells whether the two 95% intervals overlap (a quick, conservative check; it
    is not a paired test).
    """
    ra, rb = _results(a), _results(b)
    rows: list[dict[str, Any]] = []
    ca, cb = ra.get("conditions", {}), rb.get("conditions", {})
    for cond in list(dict.fromkeys([*ca, *cb])):
        ma = ca.get(cond, {}).get("metrics", {})
        mb = cb.get(cond, {}).get("metrics", {})
        for metric in list(dict.fromkeys([*ma, *mb])):
            ea, eb = ma.get(metric, {}), mb.get(metric, {})
            va, vb = ea.get("value"), eb.get("value")
            overlap = None
            if None not in (ea.get("low"), ea.get("high"), eb.get("low"), eb.get("high")):
                overlap = ea["low"] <= eb["high"] and eb["low"] <= ea["high"]
            rows.append(
                {
                    "condition": cond,
                    "metric": metric,
                    "a": va,
                    "b": vb,
                    "diff": vb - va if va is not None and vb is not None else None,
                    "overlap": overlap,
                }
            )
    return rows
