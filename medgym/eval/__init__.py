"""Evaluation: run a policy over a dataset and env, score it, ablate it, report it.

Example:
    >>> import tempfile
    >>> from medgym.eval import EvalConfig, run_eval
    >>> cfg = EvalConfig(policy="scripted:pixel-reader", data="synthetic",
    ...                  data_kwargs={"num_samples": 4}, ablations=("blank-image",),
    ...                  resamples=50, progress=False)
    >>> result = run_eval(cfg, tempfile.mkdtemp(), report=False)
    >>> sorted(result.results["conditions"])
    ['blank-image', 'main']
"""

from __future__ import annotations

from medgym.eval.ablations import ABLATIONS, ablate_samples, blank_samples, shuffled_samples
from medgym.eval.bootstrap import Estimate, bootstrap_ratio
from medgym.eval.compare import compare_runs
from medgym.eval.demo import run_demo_eval
from medgym.eval.harness import EvalConfig, EvalResult, evaluate_groups, load_samples, run_eval
from medgym.eval.metrics import episode_record, pass_at_k, sample_record, zoom_iou
from medgym.eval.policies import make_policy

__all__ = [
    "ABLATIONS",
    "Estimate",
    "EvalConfig",
    "EvalResult",
    "ablate_samples",
    "blank_samples",
    "bootstrap_ratio",
    "compare_runs",
    "episode_record",
    "evaluate_groups",
    "load_samples",
    "make_policy",
    "pass_at_k",
    "run_demo_eval",
    "run_eval",
    "sample_record",
    "shuffled_samples",
    "zoom_iou",
]
