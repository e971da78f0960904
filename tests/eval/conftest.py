"""A small evaluation run shared by the report, CLI and browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from medgym.eval import EvalConfig, run_eval
from medgym.eval.harness import EvalResult


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> EvalResult:
    """pixel-reader on 8 synthetic samples, 2 rollouts, every ablation, with the report."""
    out: Path = tmp_path_factory.mktemp("eval_run")
    config = EvalConfig(
        policy="scripted:pixel-reader", data="synthetic", data_kwargs={"num_samples": 8}, n=2,
        ablations=("no-tools", "blank-image", "shuffled-image"), resamples=200, progress=False,
    )  # fmt: skip
    return run_eval(config, out)
