"""The ``medgym eval``, ``medgym report`` and ``medgym compare`` commands.

They are registered on the main app by :func:`register` (one line in :mod:`medgym.cli`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medgym.errors import ConfigError

__all__ = ["compare", "eval_command", "register", "report", "task_settings"]

console = Console()


def eval_command(
    policy: Annotated[str, typer.Option(help="scripted:NAME, hf:PATH or openai:URL:MODEL.")],
    out: Annotated[Path, typer.Option(help="Output folder (resumes what it finds there).")],
    data: Annotated[
        str | None,
        typer.Option(
            help="Dataset NAME[:split] (split defaults to test; default: the tiny task's)."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Tiny task (synthetic, synthetic3d): its data settings and session budgets; "
            "default: the one an hf: checkpoint recorded; none: the dataset's own defaults."
        ),
    ] = None,
    env: Annotated[str, typer.Option(help="Env id: tools and budgets.")] = "MedVQA-Zoom-v0",
    n: Annotated[int, typer.Option(help="Rollouts per sample.")] = 1,
    evr: Annotated[str, typer.Option(help="EVR mode: off, branch or reground.")] = "off",
    ablate: Annotated[
        str, typer.Option(help="Comma-separated: no-tools,blank-image,shuffled-image.")
    ] = "",
    judge: Annotated[
        str | None, typer.Option(help="OpenAI-compatible judge: URL or URL|MODEL.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Most samples evaluated.")] = None,
    num_samples: Annotated[
        int | None, typer.Option(help="Samples generated (synthetic set only).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Episodes in flight (remote policies).")] = 8,
    pseudo: Annotated[str, typer.Option(help="Pseudo label scored: majority or fpl.")] = (
        "majority"
    ),
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed (shuffle ablation, bootstrap).")] = 0,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Model profile (qwen2.5-vl, tiny-vlm...); default: the one the checkpoint "
            "recorded, else qwen2.5-vl."
        ),
    ] = None,
) -> None:
    """Evaluate a policy on a dataset (with ablations); write results.json and report.html."""
    from medgym.eval.harness import EvalConfig, run_eval

    logging.basicConfig(level=logging.WARNING)
    data, data_kwargs, session_options, note = task_settings(policy, task, data)
    if note:
        console.print(note)
    if num_samples is not None:
        data_kwargs["num_samples"] = num_samples
    config = EvalConfig(
        policy=policy, data=data, data_kwargs=data_kwargs, session_options=session_options,
        env=env, n=n, evr=evr,
        ablations=tuple(a for a in ablate.split(",") if a.strip()), judge=judge, limit=limit,
        concurrency=concurrency, pseudo=pseudo, resamples=resamples, seed=seed,  # type: ignore[arg-type]
        profile=profile,
    )  # fmt: skip
    result = run_eval(config, out)
    console.print(f"profile: {result.results['profile']}")
    _print_conditions(result.results)
    console.print(f"results: {out / 'results.json'}\nreport:  {out / 'report.html'}")


def task_settings(
    policy: str, task: str | None, data: str | None
) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    """``medgym eval``'s data, loader options, session options and a note, from its flags.

    A tiny task (:data:`~medgym.agents.tiny_vlm.TINY_TASKS`), named or recorded by an
    ``hf:`` checkpoint (``medgym_task.json``), gives its loader settings and session budgets:
    the tiny agent evaluated on the dataset's default mix answers questions it never saw.

    Raises:
        ConfigError: No data and no task; a named task on another dataset than ``data``.
    """
    from medgym.agents.tiny_vlm.builder import get_tiny_task, load_checkpoint_task

    recorded = False
    if task is None and policy.startswith("hf:") and Path(policy[3:]).is_dir():
        task = load_checkpoint_task(policy[3:])
        recorded = task is not None
    if task is None or task == "none":
        if data is None:
            raise ConfigError("give --data NAME[:split], or --task for a tiny task's data")
        return data, {}, {}, None
    spec = get_tiny_task(task)
    if data is not None and data.partition(":")[0] != spec.dataset:
        if not recorded:
            raise ConfigError(
                f"--task {task} is on dataset `{spec.dataset}`; --data names `{data}`"
            )
        return data, {}, {}, (
            f"[yellow]the checkpoint was trained on tiny task `{task}` ({spec.dataset}); "
            f"evaluating on `{data}` as asked, with its own defaults[/yellow]"
        )  # fmt: skip
    source = " (recorded by the checkpoint; --task none for the dataset's defaults)"
    return (
        data or f"{spec.dataset}:test",
        dict(spec.load),
        dict(spec.session),
        f"task: {task}{source if recorded else ''}",
    )


def _print_conditions(results: dict) -> None:  # type: ignore[type-arg]
    table = Table(title=f"{results.get('policy_name')} on {results['config']['data']}")
    conditions = results["conditions"]
    table.add_column("metric")
    for c in conditions:
        table.add_column(c, justify="right")
    names = list(dict.fromkeys(m for c in conditions.values() for m in c["metrics"]))
    for m in names:
        cells = []
        for c in conditions.values():
            e = c["metrics"].get(m)
            cells.append(
                "-"
                if not e or e["value"] is None
                else f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"
            )
        table.add_row(m, *cells)
    console.print(table)
    for name, rel in results.get("image_reliance", {}).items():
        console.print(f"image reliance ({name}): accuracy drop {rel['drop']:+.3f}")


def report(
    run_dir: Annotated[Path, typer.Argument(help="Folder of a `medgym eval` run.")],
    max_episodes: Annotated[int, typer.Option(help="Episodes per condition in the viewer.")] = 24,
) -> None:
    """Rebuild the static HTML report of an evaluation run."""
    from medgym.eval.report import build_report

    console.print(f"report: {build_report(run_dir, max_episodes=max_episodes)}")


def compare(
    run_a: Annotated[Path, typer.Argument(help="Baseline run folder.")],
    run_b: Annotated[Path, typer.Argument(help="Run folder compared with it.")],
) -> None:
    """Print the metric-by-metric difference of two evaluation runs (B minus A)."""
    from medgym.eval.compare import compare_runs

    table = Table(title=f"{run_b} minus {run_a}")
    for col in ("condition", "metric", "A", "B", "B - A", "CIs overlap"):
        table.add_column(col, justify="left" if col in ("condition", "metric") else "right")

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in compare_runs(run_a, run_b):
        overlap = "-" if r["overlap"] is None else ("yes" if r["overlap"] else "no")
        diff = "-" if r["diff"] is None else f"{r['diff']:+.3f}"
        table.add_row(r["condition"], r["metric"], f(r["a"]), f(r["b"]), diff, overlap)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``report`` and ``compare`` to the ``medgym`` app."""
    app.command("eval")(eval_command)
    app.command("report")(report)
    app.command("compare")(compare)
