from __future__ import annotations

from typer.testing import CliRunner

from medgym.cli import app
from medgym.core.trajectory import read_groups


def test_demo_writes_trajectories_and_table(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--num-samples", "4", "--n", "2",
              "--datasets", "synthetic", "--no-eval", "--train-steps", "0", "--no-tiny"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for policy in ("oracle", "pixel-reader", "random-zoom", "direct"):
        assert policy in result.output
        groups = list(read_groups(tmp_path / f"synthetic_{policy}.jsonl"))
        assert len(groups) == 4 and all(len(g) == 2 for g in groups)
    assert "100.0%" in result.output  # the oracle row


def test_info_lists_everything() -> None:
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0
    for name in ("MedVQA-Zoom-v0", "zoom_in", "synthetic", "qwen2.5-vl"):
        assert name in result.output
