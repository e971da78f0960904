"""The ``medgym`` command line: ``medgym demo`` runs the main job on the bundled data."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medgym.eval.cli_commands import register as register_eval_commands

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

DEMO_POLICIES = ("oracle", "pixel-reader", "random-zoom", "direct")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the trajectories (JSONL).")] = Path(
        "runs/demo"
    ),
    num_samples: Annotated[int, typer.Option(help="Synthetic samples per run.")] = 48,
    n: Annotated[int, typer.Option(help="Rollouts per sample (group size).")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic set.")] = 0,
    datasets: Annotated[str, typer.Option(help="Comma-separated bundled sets.")] = (
        "synthetic,realworld"
    ),
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Evaluate with ablations; write the report.")
    ] = True,
    train_steps: Annotated[
        int, typer.Option(help="GRPO steps of the tiny model through TRL (0 skips training).")
    ] = 3,
    tiny: Annotated[
        bool, typer.Option("--tiny/--no-tiny", help="Evaluate the tiny offline VLM with EVR.")
    ] = True,
) -> None:
    """Run groups of episodes with the scripted policies on the bundled offline datasets."""
    from medgym.agents import GroupRunner, make_scripted_policy
    from medgym.data import load
    from medgym.envs import SessionConfig

    logging.basicConfig(level=logging.WARNING)
    out.mkdir(parents=True, exist_ok=True)
    zoom_cfg = SessionConfig(tools=("zoom_in", "crop", "reground"), max_turns=4)
    direct_cfg = SessionConfig(tools=(), max_turns=1)
    table = Table(title=f"medgym demo: {n} rollouts per sample")
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
            runner = GroupRunner(cfg, n=n)
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
    if train_steps > 0:
        _demo_train(train_steps, out / "trl")
    if evaluate:
        from medgym.eval import run_demo_eval

        console.print("Evaluating with ablations (no tools, blank image, shuffled image)...")
        index = run_demo_eval(
            out / "eval",
            datasets=names,
            num_samples=min(num_samples, 16),
            n=2,
            tiny_model=tiny,  # the warm-started tiny VLM (skipped without torch)
            evr="reground",
            progress=True,
        )
        console.print(f"Report: [bold]{index}[/bold] ({time.perf_counter() - t0:.1f} s in all)")


def _demo_train(steps: int, out: Path) -> None:
    """GRPO of the warm-started tiny model with the label-free reward; print the curve."""
    try:
        from medgym.integrations.trl import demo_train
    except ImportError as e:
        console.print(f"[yellow]training skipped: {e} (pip install 'medgym[trl]')[/yellow]")
        return
    console.print(
        f"Training the tiny model with GRPO for {steps} steps (label-free reward; the first run "
        "warm-starts it for about 2 minutes, then it is cached)..."
    )
    curve = demo_train(steps=steps, out=out)
    table = Table(title="GRPO on the tiny model (TRL, CPU)")
    for col in ("step", "mean reward", "tool-call rate", "pseudo-label conf."):
        table.add_column(col, justify="right")
    for row in curve:
        conf = row.get("pseudo_label_confidence")
        table.add_row(
            str(row.get("step", "")),
            f"{row.get('reward', float('nan')):.3f}",
            f"{row.get('tool_call_rate', float('nan')):.2f}",
            "-" if conf is None else f"{conf:.2f}",
        )
    console.print(table)


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


def main() -> None:
    """Entry point of ``python -m medgym``."""
    app()
