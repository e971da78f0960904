from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from medgym.agents import Generation, make_scripted_policy
from medgym.cli import app
from medgym.eval import EvalConfig, compare_runs, run_eval
from medgym.eval.harness import EvalResult
from medgym.eval.report import build_report
from medgym.eval.report.viewer import high_entropy_mask


def test_report_is_self_contained(small_run: EvalResult) -> None:
    doc = (small_run.out_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", doc)  # no CDN, nothing remote
    assert doc.count("data:image/png;base64,") >= 4  # plots and views are inline
    for needle in ('id="headline"', 'id="reliance"', 'id="f-correct"', 'id="f-group"'):
        assert needle in doc
    assert "Image reliance under blank-image" in doc


def test_viewer_draws_zoom_boxes_and_evidence(small_run: EvalResult) -> None:
    doc = (small_run.out_dir / "report.html").read_text()
    assert doc.count('class="zoom-box"') > 0 and 'class="evidence-box"' in doc
    boxes = re.findall(
        r'class="zoom-box" style="left:([\d.-]+)%;top:([\d.-]+)%;width:([\d.]+)%', doc
    )
    assert all(-1 <= float(x) <= 101 and 0 < float(w) <= 101 for x, _, w in boxes)
    assert 'data-correct="0"' in doc and 'data-correct="1"' in doc


def test_high_entropy_mask_marks_the_top_tokens() -> None:
    assert high_entropy_mask([0.1, 0.1, 2.0, 0.1]) == [False, False, True, False]
    assert high_entropy_mask([0.0, 0.0]) == [False, False]
    assert high_entropy_mask([]) == []


class _CharTokenizer:
    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


class _EntropyPolicy:
    """The pixel reader, reporting one token per character and an entropy spike on digits."""

    name = "entropy-reader"
    tokenizer = _CharTokenizer()

    def __init__(self) -> None:
        self.inner = make_scripted_policy("pixel-reader")

    async def generate(self, session) -> Generation:  # type: ignore[no-untyped-def]
        text = (await self.inner.generate(session)).text
        ents = [3.0 if ch.isdigit() else 0.05 for ch in text]
        return Generation(text, token_ids=[ord(c) for c in text], entropies=ents)


def test_high_entropy_tokens_are_highlighted(tmp_path: Path) -> None:
    config = EvalConfig(
        policy="scripted:entropy-reader", data="synthetic", data_kwargs={"num_samples": 3},
        resamples=20, progress=False,
    )  # fmt: skip
    run_eval(config, tmp_path, policy=_EntropyPolicy())
    doc = (tmp_path / "report.html").read_text()
    spans = re.findall(r'<span class="hi" title="H=3.00">(.)</span>', doc)
    assert spans and all(s.isdigit() for s in spans)
    assert "no token entropies recorded" not in doc


def test_compare_and_report_commands(small_run: EvalResult, tmp_path: Path) -> None:
    other = tmp_path / "direct"
    result = CliRunner().invoke(
        app, ["eval", "--policy", "scripted:direct", "--data", "synthetic", "--num-samples", "8",
              "--n", "2", "--out", str(other), "--resamples", "50"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (other / "results.json").is_file() and (other / "report.html").is_file()
    rows = {(r["condition"], r["metric"]): r for r in compare_runs(small_run.out_dir, other)}
    acc = rows[("main", "accuracy")]
    assert acc["diff"] == acc["b"] - acc["a"]
    assert rows[("blank-image", "accuracy")]["b"] is None  # only in run A
    printed = CliRunner().invoke(app, ["compare", str(small_run.out_dir), str(other)])
    assert printed.exit_code == 0 and "accuracy" in printed.output
    (other / "report.html").unlink()
    rebuilt = CliRunner().invoke(app, ["report", str(other), "--max-episodes", "3"])
    assert rebuilt.exit_code == 0 and (other / "report.html").is_file()


def test_report_of_a_folder_without_results_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code != 0
    assert "results.json" in str(result.exception)


def test_build_report_caps_episodes(small_run: EvalResult) -> None:
    path = build_report(small_run.out_dir, max_episodes=2)
    assert path.read_text().count('<section class="episode') == 2 * 4  # 4 conditions
    build_report(small_run.out_dir)  # restore the default for the other tests


def test_evr_fire_rate_is_reported(tmp_path: Path) -> None:
    # reground mode with an absolute threshold: turns with a digit (entropy 3.0) fire
    config = EvalConfig(
        policy="scripted:entropy-reader", data="synthetic", data_kwargs={"num_samples": 4},
        evr="reground", resamples=20, progress=False,
        evr_options={"threshold_kind": "absolute", "threshold": 1.0, "warmup": 0,
                     "source": "entropy", "tokens": "all"},
    )  # fmt: skip
    res = run_eval(config, tmp_path, policy=_EntropyPolicy(), report=False)
    main = res.results["conditions"]["main"]
    assert main["metrics"]["evr_fire_rate"]["value"] > 0
    assert main["evr_counters"]["evr/fires"] > 0


def test_volume_views_are_captioned_with_their_slices(tmp_path) -> None:
    """Issue 17: the report says which slice (or overview) each view of a volume shows."""
    from medgym.agents import GroupRunner, make_scripted_policy
    from medgym.data import load
    from medgym.envs import env_session_config
    from medgym.eval.report.viewer import episode_html

    samples = [s for s in load("synthetic3d", num_samples=4) if s.meta["family"] == "size"]
    groups = GroupRunner(env_session_config("MedVQA-Volume-v0"), n=1, progress=False).run(
        samples, make_scripted_policy("scroller")
    )
    traj = groups[0].trajectories[0]
    page = episode_html(groups[0], traj, {"correct": 1.0, "score": 1.0}, "main")
    scrolled = [v.slice_index for v in traj.views[1:] if v.montage is None and not v.reformat]
    assert scrolled and all(f"· slice {k}" in page for k in scrolled)
    (tiled,) = [v.montage for v in traj.views if v.montage]
    assert "· overview of slices " + ", ".join(map(str, tiled)) in page
