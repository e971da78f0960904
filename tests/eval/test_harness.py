from __future__ import annotations

import json
from pathlib import Path

import pytest

from medgym.agents import Generation, make_scripted_policy
from medgym.core.trajectory import read_groups
from medgym.errors import ConfigError
from medgym.eval import EvalConfig, run_eval
from medgym.eval.harness import EvalResult


def test_results_json_has_config_versions_and_every_condition(small_run: EvalResult) -> None:
    results = json.loads((small_run.out_dir / "results.json").read_text())
    assert results["config"]["policy"] == "scripted:pixel-reader"
    assert {"medgym", "python", "numpy"} <= set(results["versions"])
    assert list(results["conditions"]) == ["main", "no-tools", "blank-image", "shuffled-image"]
    for cond in results["conditions"].values():
        assert cond["samples"] == 8 and cond["episodes"] == 16
        for name in ("accuracy", "tool_calls_per_episode", "pass@1", "majority_accuracy"):
            est = cond["metrics"][name]
            assert est["low"] <= est["value"] <= est["high"]
        assert set(cond["groups"]) >= {"modality", "body_part", "question_type", "dataset"}


def test_ablations_change_what_they_should(small_run: EvalResult) -> None:
    c = small_run.results["conditions"]
    assert c["main"]["metrics"]["tool_calls_per_episode"]["value"] > 0
    assert c["no-tools"]["metrics"]["tool_calls_per_episode"]["value"] == 0
    # the pixel reader reads pixels: blank images hurt it
    rel = small_run.results["image_reliance"]
    assert rel["blank-image"]["drop"] > 0
    assert rel["blank-image"]["accuracy"] == c["blank-image"]["metrics"]["accuracy"]["value"]
    blank_uris = {g.sample.images[0].uri for g in small_run.groups["blank-image"]}
    assert all(u.startswith("medgym-blank://") for u in blank_uris)


def test_trajectories_and_episode_records_are_written(small_run: EvalResult) -> None:
    groups = list(read_groups(small_run.out_dir / "trajectories" / "main.jsonl"))
    assert len(groups) == 8 and all(len(g) == 2 for g in groups)
    lines = (small_run.out_dir / "episodes" / "main.jsonl").read_text().splitlines()
    assert len(lines) == 16 and "zoom_iou" in json.loads(lines[0])


class _Counting:
    """The pixel reader, counting its turns."""

    def __init__(self) -> None:
        self.inner = make_scripted_policy("pixel-reader")
        self.name = "pixel-reader"
        self.turns = 0

    async def generate(self, session) -> Generation:  # type: ignore[no-untyped-def]
        self.turns += 1
        return await self.inner.generate(session)


def test_rerun_resumes_and_skips_finished_samples(tmp_path: Path) -> None:
    def config(num: int) -> EvalConfig:
        return EvalConfig(
            policy="scripted:pixel-reader", data="synthetic", data_kwargs={"num_samples": num},
            resamples=20, progress=False, chunk_size=2,
        )  # fmt: skip

    first = _Counting()
    run_eval(config(3), tmp_path, policy=first, report=False)
    assert first.turns > 0
    again = _Counting()
    res = run_eval(config(3), tmp_path, policy=again, report=False)
    assert again.turns == 0 and res.results["conditions"]["main"]["samples"] == 3
    more = _Counting()
    res = run_eval(config(5), tmp_path, policy=more, report=False)
    assert 0 < more.turns < first.turns * 2 and res.results["conditions"]["main"]["samples"] == 5
    assert len(list(read_groups(tmp_path / "trajectories" / "main.jsonl"))) == 5


def test_ablating_the_label_reading_oracle_is_refused(tmp_path: Path) -> None:
    config = EvalConfig(
        policy="scripted:oracle", data="synthetic", data_kwargs={"num_samples": 2},
        ablations=("blank-image",), progress=False,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="reads the labels"):
        run_eval(config, tmp_path)


def test_judge_scores_are_aggregated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medgym.eval import harness

    def fake_judge(spec: str | None):  # type: ignore[no-untyped-def]
        return lambda question, preds, ref, options: [1.0 for _ in preds]

    monkeypatch.setattr(harness, "_judge_fn", fake_judge)
    config = EvalConfig(
        policy="scripted:random-zoom", data="synthetic", data_kwargs={"num_samples": 3},
        judge="http://127.0.0.1:9/v1", resamples=20, progress=False,
    )  # fmt: skip
    res = run_eval(config, tmp_path, report=False)
    assert res.results["conditions"]["main"]["metrics"]["judge_accuracy"]["value"] == 1.0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"env": "MedVQA-Zom-v0"}, "MedVQA-Zoom-v0"),
        ({"n": 0}, "n must be"),
        ({"evr": "sometimes"}, "evr must be"),
        ({"ablations": ("blank",)}, "unknown ablation"),
    ],
    ids=["env-typo", "n-zero", "evr-mode", "ablation"],
)
def test_config_validation(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EvalConfig(policy="scripted:direct", data="synthetic", **kw)
