"""Per-group records of a verl run and their per-step summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")

from medgym.core.trajectory import Trajectory
from medgym.integrations.verl.metrics import group_record, main, read_records, sink_for, summarize
from medgym.rewards import GroupRewardResult


def _fields(tid: str, answer: str, parent: str | None, calls: float, evr: dict[str, float]) -> Any:
    traj = Trajectory(id=tid, sample_id="s", parent_id=parent, answer=answer, prompt="?")
    return {
        "medgym_trajectory": traj.model_dump_json(),
        "medgym_metrics": {"turns": 2.0, "tool_calls": calls, "tool_errors": 0.0},
        "medgym_evr": evr,
    }


def _group() -> tuple[GroupRewardResult, list[Any]]:
    evr = {"turns_scored": 2.0, "fires": 1.0, "branches": 1.0, "regrounds": 0.0, "forked": 0.0}
    fork = {**evr, "fires": 0.0, "branches": 0.0, "forked": 1.0}
    fields = [
        _fields("a", "left", None, 1.0, evr),
        _fields("a.b0-0", "right", "a", 0.0, fork),  # flipped
        _fields("c", "left", None, 1.0, evr),
        _fields("c.b0-0", "left", "c", 1.0, fork),  # same answer
    ]
    result = GroupRewardResult(
        rewards=[1.0, 0.0, 1.0, 1.0],
        parts={"accuracy": [1.0, 0.0, 1.0, 1.0]},
        diagnostics={"confidence": 0.75, "pseudo_label": "left"},
    )
    return result, fields


def test_group_record_means_rates_and_flips() -> None:
    result, fields = _group()
    rec = group_record("u", result, fields, global_steps=3, validate=False)
    assert rec["reward"] == 0.75 and rec["part/accuracy"] == 0.75
    assert rec["group/confidence"] == 0.75 and "group/pseudo_label" not in rec
    assert rec["tool_call_rate"] == 0.75 and rec["medgym/tool_calls"] == 0.75
    assert rec["evr/fire_rate"] == 2 / 8 and rec["evr/branches"] == 0.5
    assert rec["evr/compared"] == 2 and rec["evr/flip_rate"] == 0.5


def test_sink_summary_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, fields = _group()
    sink = sink_for(tmp_path)
    for step, validate in [(1, False), (1, False), (2, False), (2, True)]:
        sink.write(group_record("u", result, fields, global_steps=step, validate=validate))
    rows = summarize(read_records(tmp_path))
    assert [(r["step"], r["validate"], r["groups"]) for r in rows] == [
        (1, False, 2),
        (2, False, 1),
        (2, True, 1),
    ]
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "evr/fire_rate" in out and "val 2" in out and "0.250" in out
    with pytest.raises(SystemExit, match="no group records"):
        main([str(tmp_path / "empty")])


def test_reground_groups_report_the_share_of_withheld_answers_that_changed() -> None:
    evr = {"turns_scored": 2.0, "fires": 1.0, "branches": 0.0, "regrounds": 1.0, "forked": 0.0}
    fields = [
        _fields("a", "left", None, 1.0, {**evr, "flipped": 1.0}),
        _fields("b", "left", None, 1.0, {**evr, "flipped": 0.0}),
        _fields("c", "left", None, 0.0, {**evr, "regrounds": 0.0, "fires": 0.0}),
    ]
    result = GroupRewardResult(rewards=[1.0, 1.0, 1.0])
    rec = group_record("u", result, fields)
    assert rec["evr/compared"] == 2 and rec["evr/flip_rate"] == 0.5
