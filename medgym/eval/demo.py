"""``run_demo_eval``: the evaluation stage of ``medgym demo`` on the bundled offline sets.

Every policy runs on every bundled set; policies that read pixels also run the ablations
(no tools, blank image, shuffled image). Each run gets its own folder and report, and an index
page links them with one summary table.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from medgym.agents.policy import Policy
from medgym.eval.ablations import ABLATIONS, LABEL_READING_POLICIES
from medgym.eval.harness import EvalConfig, EvalResult, run_eval

__all__ = ["DEMO_EVAL_POLICIES", "run_demo_eval"]

logger = logging.getLogger(__name__)

DEMO_EVAL_POLICIES = ("pixel-reader", "random-zoom", "oracle")
"""Scripted policies of the demo (``direct`` is the pixel reader's no-tools ablation)."""


class _Entry(NamedTuple):
    """One policy of the demo evaluation."""

    spec: str
    policy: Policy
    evr: str = "off"
    session_options: dict[str, Any] | None = None
    task: dict[str, Any] | None = None  # synthetic-set options


def _tiny_policy(tiny_model: bool | str | Path | Policy) -> Policy | None:
    if not isinstance(tiny_model, (bool, str, Path)):
        return tiny_model
    try:
        from medgym.agents.hf_policy import HFPolicy

        if tiny_model is True:
            from medgym.agents.tiny_vlm import warm_start

            tiny_model = warm_start()
        return HFPolicy.from_pretrained(str(tiny_model), name="tiny-vlm")
    except ImportError as e:
        logger.warning("tiny model skipped: %s", e)
        return None


def _index(out: Path, runs: list[tuple[str, str, EvalResult]]) -> Path:
    rows = []
    for dataset, policy, res in runs:
        conds = res.results["conditions"]

        def acc(c: str, conds: dict[str, Any] = conds) -> str:
            e = conds.get(c, {}).get("metrics", {}).get("accuracy")
            return "&ndash;" if not e else f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"

        link = f"{html.escape(dataset)}/{html.escape(policy)}/report.html"
        rows.append(
            f"<tr><td>{html.escape(dataset)}</td><td><a href='{link}'>{html.escape(policy)}</a>"
            "</td>" + "".join(f"<td>{acc(c)}</td>" for c in ("main", *ABLATIONS)) + "</tr>"
        )
    head = "".join(f"<th>{c}</th>" for c in ("main", *ABLATIONS))
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>medgym demo '
        "evaluation</title><style>body{font-family:system-ui,sans-serif;margin:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px}table{border-collapse:collapse}</style>"
        "</head><body><h1>medgym demo: evaluation</h1><p>Accuracy with 95% bootstrap "
        "intervals. The oracle reads the labels: an upper bound, never ablated.</p>"
        f"<table><tr><th>dataset</th><th>policy</th>{head}</tr>{''.join(rows)}</table>"
        "</body></html>"
    )
    path = out / "index.html"
    path.write_text(doc, encoding="utf-8")
    return path


def run_demo_eval(
    out_dir: str | Path,
    *,
    datasets: Sequence[str] = ("synthetic", "realworld"),
    policies: Sequence[str] = DEMO_EVAL_POLICIES,
    extra_policies: Mapping[str, Policy] | None = None,
    tiny_model: bool | str | Path | Policy | None = None,
    num_samples: int = 32,
    n: int = 4,
    evr: str = "off",
    resamples: int = 500,
    progress: bool = False,
) -> Path:
    """Evaluate scripted (and optionally tiny-model) policies on the bundled sets; write reports.

    Args:
        out_dir: Output folder; each run goes to ``out_dir/<dataset>/<policy>/``.
        datasets: Bundled sets (``synthetic`` gets ``num_samples``).
        policies: Scripted policy names.
        extra_policies: More policies by display name (e.g. a freshly trained model).
        tiny_model: ``True`` (warm-start the tiny VLM, cached), a checkpoint path, or a policy.
        num_samples: Synthetic samples.
        n: Rollouts per sample.
        evr: EVR mode for the model policies (``off``, ``branch``, ``reground``).
        resamples: Bootstrap resamples.
        progress: Show progress bars.

    Returns:
        The path of ``index.html``, which links every run's report.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from medgym.agents.scripted import make_scripted_policy
    from medgym.agents.tiny_vlm import TINY_SESSION, TINY_TASK

    entries = [_Entry(f"scripted:{name}", make_scripted_policy(name)) for name in policies]
    entries += [_Entry(f"object:{name}", p, evr) for name, p in (extra_policies or {}).items()]
    if tiny_model:
        tiny = _tiny_policy(tiny_model)
        if tiny is not None:
            # the tiny model's own budgets (one look, then the answer) and task (its question
            # families at 512 px); its checkpoint's profile comes with it
            entries.append(_Entry("hf:tiny-vlm", tiny, evr, dict(TINY_SESSION), dict(TINY_TASK)))
    runs: list[tuple[str, str, EvalResult]] = []
    for dataset in datasets:
        for e in entries:
            task = e.task or {}
            data_kwargs = {"num_samples": num_samples, **task} if dataset == "synthetic" else {}
            name = e.spec.split(":", 1)[1]
            ablations = () if name in LABEL_READING_POLICIES else ABLATIONS
            config = EvalConfig(
                policy=e.spec, data=dataset, data_kwargs=data_kwargs, n=n,
                ablations=ablations, evr=e.evr, resamples=resamples, progress=progress,
                session_options=e.session_options or {},
            )  # fmt: skip
            res = run_eval(config, out / dataset / name, policy=e.policy)
            runs.append((dataset, name, res))
    path = _index(out, runs)
    logger.info("demo evaluation index at %s", path)
    return path
