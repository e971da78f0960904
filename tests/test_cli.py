from __future__ import annotations

from typer.testing import CliRunner

from medgym.cli import app
from medgym.core.trajectory import read_groups


def test_demo_writes_trajectories_and_table(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--num-samples", "4", "--n", "2",
              "--datasets", "synthetic", "--no-eval", "--rl-steps", "0", "--no-tiny"],
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


def test_demo_learning_phase_writes_the_before_after_summary(
    tmp_path, format_warm_dir, format_warm_config, capsys
) -> None:
    """The demo's second phase as `make demo` runs it, at a test budget: the warm-started tiny
    model, label-free GRPO, split-C evaluation, the table and `summary.json`."""
    import json
    import shutil

    from medgym.cli import _demo_learning
    from medgym.learning.bench import METRICS

    cache = tmp_path / "cache"
    shutil.copytree(format_warm_dir, cache / format_warm_dir.name)
    _demo_learning(
        tmp_path, rl_steps=1, seed=0, warm=format_warm_config, samples=4, cache=cache,
        grpo={"prompts_per_step": 2, "num_generations": 2},
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["warm_start", "label-free"]
    for r in summary.values():
        assert all(r[m] is not None for m in METRICS)
    # the tiny model answers in the format it was taught (the profile defect would give ~0)
    assert summary["warm_start"]["answer_rate"]["value"] >= 0.75
    printed = capsys.readouterr().out
    assert "before and after label-free GRPO" in printed and "label-free" in printed
    assert (tmp_path / "learning" / "learning.html").is_file()


def test_user_errors_print_one_line_and_exit_2(tmp_path) -> None:
    """The installed `medgym` script: a typo is one line naming the near name, exit status 2."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "medgym", "eval", "--policy", "scripted:pixel-redaer",
           "--data", "synthetic", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "medgym: error: unknown policy `pixel-redaer`; did you mean `pixel-reader`?; known: "
        "oracle, teacher, pixel-reader, random-zoom, direct, scroller"
    ]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_checkpoint_is_a_user_error(tmp_path) -> None:
    import pytest

    from medgym.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "--policy", f"hf:{tmp_path / 'nope'}", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_learning_command_defaults_are_the_benchmarks_settings(tmp_path, monkeypatch) -> None:
    """`medgym learning` without flags trains with `tiny_grpo_config()` and the default
    `LearningConfig`: the command's defaults cannot drift from the benchmark's."""
    import medgym.learning.bench as bench

    seen = []

    def fake_run(config, out, **kwargs):
        seen.append(config)
        return {}

    monkeypatch.setattr(bench, "run_learning", fake_run)
    result = CliRunner().invoke(app, ["learning", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.grpo == bench.tiny_grpo_config(seed=0)
    assert config.grpo.steps == bench.TINY_GRPO["steps"]
    assert config.grpo.entropy_coeff == bench.TINY_GRPO["entropy_coeff"] < 0
    default = bench.LearningConfig()
    for name in ("variants", "rl_samples", "eval_samples", "eval_temperature", "task", "seed"):
        assert getattr(config, name) == getattr(default, name), name
