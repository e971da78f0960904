"""The ``medgym`` command line: ``medgym demo`` runs the main job on the bundled data."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medgym.errors import MedGymError
from medgym.eval.cli_commands import register as register_eval_commands
from medgym.learning.cli import register as register_learning_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

DEMO_POLICIES = ("oracle", "pixel-reader", "random-zoom", "direct")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the trajectories (JSONL).")] = Path(
        "runs/demo"
    ),
    num_samples: Annotated[int, typer.Option(help="Synthetic samples per scripted run.")] = 48,
    n: Annotated[int, typer.Option(help="Rollouts per sample (group size).")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic set.")] = 0,
    datasets: Annotated[str, typer.Option(help="Comma-separated bundled sets.")] = (
        "synthetic,realworld"
    ),
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Evaluate with ablations; write the report.")
    ] = True,
    rl_steps: Annotated[
        int, typer.Option(help="Label-free GRPO steps of the tiny model (0 skips it).")
    ] = 30,
    tiny: Annotated[
        bool, typer.Option("--tiny/--no-tiny", help="Warm-start and train the tiny offline VLM.")
    ] = True,
) -> None:
    """The whole pipeline on the bundled data: scripted baselines, then the tiny agent learning.

    1. Scripted policies on the bundled sets (groups of ``n`` rollouts).
    2. The tiny Qwen2.5-VL: warm start on split A (cached), label-free GRPO on split B (labels
       removed), before/after evaluation on held-out split C with intervals and ablations;
       ``OUT/summary.json`` holds the figures (the shape of ``medgym learning``'s output).
    3. The evaluation reports of the scripted policies (``OUT/eval/index.html``).
    """
    from medgym.agents import GroupRunner, make_scripted_policy
    from medgym.data import load
    from medgym.envs import env_session_config
    from medgym.learning.cli import quiet_libraries

    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()
    out.mkdir(parents=True, exist_ok=True)
    zoom_cfg = env_session_config("MedVQA-Zoom-v0", max_turns=4)
    direct_cfg = env_session_config("MedVQA-Direct-v0")
    table = Table(title=f"1. scripted policies: {n} rollouts per sample")
    for col in ("dataset", "policy", "n", "accuracy", "calls/ep", "errors/ep", "ep/s"):
        table.add_column(
            col, justify="right" if col not in ("dataset", "policy") else "left", no_wrap=True
        )
    t0 = time.perf_counter()
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    for name in names:
        kwargs: dict[str, Any] = (
            {"num_samples": num_samples, "seed": seed} if name == "synthetic" else {}
        )
        samples = load(name, split="test", **kwargs)
        for policy_name in DEMO_POLICIES:
            policy = make_scripted_policy(policy_name)
            cfg = direct_cfg if policy_name == "direct" else zoom_cfg
            runner = GroupRunner(cfg, n=n, progress=False)
            path = out / f"{name}_{policy_name}.jsonl"
            groups = runner.run(samples, policy, out=path)
            trajs = [t for g in groups for t in g.trajectories]
            acc = sum(t.reward_parts.get("accuracy", 0.0) for t in trajs) / len(trajs)
            calls = sum(t.metrics.get("tool_calls", 0.0) for t in trajs) / len(trajs)
            errs = sum(
                t.metrics.get("format_errors", 0.0) + t.metrics.get("tool_errors", 0.0)
                for t in trajs
            )
            table.add_row(
                name, policy_name, str(len(samples)), f"{acc:.1%}", f"{calls:.2f}",
                f"{errs / len(trajs):.2f}", f"{runner.stats.episodes_per_second:.0f}",
            )  # fmt: skip
    console.print(table)
    console.print(
        f"[dim]oracle reads the labels: an upper bound, not a baseline. "
        f"Trajectories in {out}/ ({time.perf_counter() - t0:.1f} s)[/dim]"
    )
    if tiny:
        _demo_learning(out, rl_steps, seed)
    if evaluate:
        from medgym.eval import run_demo_eval

        console.print("3. Evaluating the scripted policies with ablations (no tools, blank image, "
                      "shuffled image)...")  # fmt: skip
        index = run_demo_eval(
            out / "eval", datasets=names, num_samples=min(num_samples, 16), n=2, progress=True
        )
        console.print(f"Report: [bold]{index}[/bold] ({time.perf_counter() - t0:.1f} s in all)")


def _demo_learning(
    out: Path,
    rl_steps: int,
    seed: int,
    *,
    warm: Any = None,
    samples: int = 64,
    grpo: dict[str, Any] | None = None,
    cache: Path | None = None,
) -> None:
    """Warm start, label-free GRPO and the before/after table of the tiny model.

    Args:
        out: Demo folder (``summary.json`` and ``learning/`` go there).
        rl_steps: GRPO steps (0: the warm start only).
        seed: Seed of splits, sampling and bootstrap.
        warm: Warm-start settings (default :class:`WarmStartConfig`'s).
        samples: Size of splits B and C.
        grpo: Overrides of the GRPO settings (tests shrink the batch).
        cache: Warm-start cache folder (default ``$MEDGYM_CACHE_DIR``).
    """
    import json

    try:
        import torch  # noqa: F401
    except ImportError as e:
        console.print(f"[yellow]tiny model skipped: {e} (pip install 'medgym[hf]')[/yellow]")
        return
    from medgym.learning.bench import LearningConfig, run_learning, tiny_grpo_config
    from medgym.learning.cli import print_summary

    console.print(
        "2. The tiny agent: warm start on split A (labelled; cached after the first run), "
        f"{rl_steps} label-free GRPO steps on split B (labels removed), evaluation on split C"
    )
    config = LearningConfig(
        variants=("label-free",) if rl_steps > 0 else (), warm=warm,
        rl_samples=samples, eval_samples=samples, probe_samples=min(16, samples),
        probe_every=max(1, rl_steps // 3),
        grpo=tiny_grpo_config(steps=max(1, rl_steps), seed=seed, **(grpo or {})), eval_n=2,
        seed=seed,
    )  # fmt: skip
    results = run_learning(
        config, out / "learning", progress=True, cache=cache,
        log=lambda m: console.print(f"[dim]{m}[/dim]"),
    )  # fmt: skip
    summary = {k: v for k, v in results.items() if k in ("warm_start", "label-free")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print_summary(summary, "the tiny agent before and after label-free GRPO (split C, 95% CI)")
    console.print(
        f"[dim]{out / 'summary.json'}; curves in {out / 'learning' / 'learning.html'}[/dim]"
    )


@app.command()
def info() -> None:
    """List the registered environments, tools, datasets and model profiles."""
    import medgym
    from medgym.data import DATASETS
    from medgym.envs import ENV_IDS, PROFILES
    from medgym.tools import TOOLS

    console.print(f"medgym {medgym.__version__}")
    console.print("envs:     " + ", ".join(ENV_IDS))
    console.print("tools:    " + ", ".join(TOOLS))
    console.print("datasets: " + ", ".join(DATASETS))
    console.print("profiles: " + ", ".join(PROFILES))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (MEDGYM_HOST).")] = "",
    port: Annotated[int, typer.Option(help="TCP port (MEDGYM_PORT); 0 keeps the setting.")] = 0,
    workers: Annotated[int, typer.Option(help="uvicorn workers (MEDGYM_WORKERS); 0 keeps it.")] = 0,
    data_root: Annotated[
        Path | None, typer.Option(help="Folder server-side paths must lie under.")
    ] = None,
    store_dir: Annotated[
        Path | None, typer.Option(help="Image store folder shared by the workers.")
    ] = None,
) -> None:
    """Run the FastAPI tool server (settings from MEDGYM_* variables, options override)."""
    from medgym.serving.run import serve as run_server
    from medgym.serving.settings import ServerSettings

    logging.basicConfig(level=logging.INFO)
    overrides: dict[str, Any] = {
        "host": host or None, "port": port or None, "workers": workers or None,
        "data_root": data_root, "store_dir": store_dir,
    }  # fmt: skip
    settings = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
    run_server(settings)


register_eval_commands(app)  # eval, report, compare (medgym/eval/cli_commands.py)
register_learning_command(app)  # learning (medgym/learning/cli.py)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``medgym`` and ``python -m medgym``.

    A :class:`~medgym.errors.MedGymError` (a bad option value, an unknown policy or dataset, a
    missing dependency) is the user's to fix, not a bug: it prints one line naming what was
    wrong and exits with status 2, as a usage error does. Anything else keeps its traceback.
    """
    try:
        app(args=argv, prog_name="medgym")
    except MedGymError as e:
        Console(stderr=True).print(
            f"medgym: error: {e}", style="red", markup=False, highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None
