"""The ``medgym learning`` command (registered on the main app by :func:`register`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medgym.learning.bench import TINY_GRPO

__all__ = ["learning_command", "print_summary", "quiet_libraries", "register"]

console = Console()

_ROWS = (
    ("accuracy", "accuracy"),
    ("no_tools_accuracy", "no tools"),
    ("blank_image_accuracy", "blank image"),
    ("answer_rate", "answer rate"),
    ("tool_calls_per_episode", "calls/ep"),
    ("zoom_iou", "zoom IoU"),
)


def quiet_libraries() -> None:
    """Keep the terminal readable: no per-shard bars or notices from transformers and the hub."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", module="transformers")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def print_summary(results: dict[str, Any], title: str) -> None:
    """A table of metrics (rows) by variant (value [95% interval]), then steps and seconds.

    Variants are columns so that the demo's two fit an 80-column terminal.
    """
    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    for name in results:
        table.add_column(name, justify="right", no_wrap=True)
    for key, label in _ROWS:
        cells = []
        for r in results.values():
            e = r.get(key)
            cells.append(
                "-" if e is None else f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"
            )
        table.add_row(label, *cells)
    table.add_row("steps", *(str(r.get("steps", "")) for r in results.values()))
    table.add_row("seconds", *(f"{float(r.get('seconds', 0)):.0f}" for r in results.values()))
    console.print(table)


def learning_command(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/learning"),
    variants: Annotated[
        str,
        typer.Option(
            help="Comma-separated: label-free, label-free-no-cca, supervised, no-tools, "
            "entropy-only (default: all; the warm start is always evaluated)."
        ),
    ] = "",
    steps: Annotated[int, typer.Option(help="GRPO steps per variant.")] = TINY_GRPO["steps"],
    prompts_per_step: Annotated[
        int,
        typer.Option(help="Samples (groups) per step."),
    ] = TINY_GRPO["prompts_per_step"],
    num_generations: Annotated[
        int,
        typer.Option(help="Rollouts per sample (G)."),
    ] = TINY_GRPO["num_generations"],
    lr: Annotated[float, typer.Option(help="GRPO learning rate.")] = TINY_GRPO["lr"],
    beta: Annotated[
        float, typer.Option(help="KL weight to the warm start (0: no KL term, as TRL's default).")
    ] = 0.0,
    num_iterations: Annotated[
        int,
        typer.Option(
            help="Optimisation passes over each step's rollouts (GRPO's mu; passes after the "
            "first use PPO's clipped surrogate)."
        ),
    ] = 1,
    loss_type: Annotated[
        str,
        typer.Option(
            help="grpo (mean over each episode's tokens, then episodes) or dapo (over all "
            "the step's tokens)."
        ),
    ] = "grpo",
    entropy_coeff: Annotated[
        float,
        typer.Option(help="Weight of the replies' entropy in the loss (< 0 minimises it)."),
    ] = TINY_GRPO["entropy_coeff"],
    freeze_vision: Annotated[
        bool,
        typer.Option(
            "--freeze-vision/--train-vision",
            help="Train the language model only (default) or the vision tower too.",
        ),
    ] = TINY_GRPO["freeze_vision"],
    eval_temperature: Annotated[
        float, typer.Option(help="Sampling temperature of the split-C evaluation.")
    ] = 1.0,
    rl_samples: Annotated[int, typer.Option(help="Size of split B (RL, labels removed).")] = 128,
    eval_samples: Annotated[int, typer.Option(help="Size of split C (evaluation).")] = 128,
    warm_steps: Annotated[int, typer.Option(help="Warm-start optimiser steps (split A).")] = 0,
    warm_answer_steps: Annotated[
        int, typer.Option(help="Of the warm-start steps, how many train the answer alone first.")
    ] = 0,
    warm_view_steps: Annotated[
        int | None,
        typer.Option(
            help="Of the warm-start steps, how many train on zoomed views alone "
            "(default: three eighths; 0: none)."
        ),
    ] = None,
    warm_lr: Annotated[
        float, typer.Option(help="Warm-start peak learning rate (0: WarmStartConfig's default).")
    ] = 0.0,
    warm_view_lr: Annotated[
        float, typer.Option(help="Peak learning rate of the view stage (0: the default).")
    ] = 0.0,
    warm_misdirect: Annotated[
        float,
        typer.Option(
            help="Share of the warm start's zone demonstrations that look at another zone "
            "and answer what it shows (an imperfect teacher; 0: none)."
        ),
    ] = 0.0,
    task: Annotated[
        str, typer.Option(help="Tiny task: synthetic (2D zones) or synthetic3d (volumes).")
    ] = "synthetic",
    seed: Annotated[int, typer.Option(help="Seed of splits, sampling and bootstrap.")] = 0,
) -> None:
    """Train the tiny agent with label-free GRPO and its ablations; evaluate on held-out data."""
    from medgym.agents.tiny_vlm import WarmStartConfig
    from medgym.learning.bench import VARIANTS, LearningConfig, run_learning, tiny_grpo_config

    logging.basicConfig(level=logging.WARNING)
    quiet_libraries()
    names = tuple(v.strip() for v in variants.split(",") if v.strip()) or tuple(VARIANTS)
    warm_options: dict = {"task": task, "answer_only_steps": warm_answer_steps}
    if warm_view_steps is not None:
        warm_options["view_steps"] = warm_view_steps
    if warm_steps:
        warm_options["max_steps"] = warm_steps
    if warm_lr:
        warm_options["lr"] = warm_lr
    if warm_view_lr:
        warm_options["view_lr"] = warm_view_lr
    if warm_misdirect:
        warm_options["misdirect"] = warm_misdirect
    warm = WarmStartConfig(**warm_options)
    config = LearningConfig(
        variants=names, task=task, warm=warm, rl_samples=rl_samples, eval_samples=eval_samples,
        probe_samples=min(32, eval_samples), eval_temperature=eval_temperature, seed=seed,
        grpo=tiny_grpo_config(
            steps=steps, prompts_per_step=prompts_per_step, num_generations=num_generations,
            lr=lr, beta=beta, num_iterations=num_iterations, loss_type=loss_type,
            entropy_coeff=entropy_coeff, freeze_vision=freeze_vision,
            seed=seed,
        ),
    )  # fmt: skip
    start = time.perf_counter()
    results = run_learning(
        config, out, progress=True, log=lambda m: console.print(f"[dim]{m}[/dim]")
    )
    print_summary(results, f"tiny agent on split C ({eval_samples} samples)")
    console.print(
        f"{out / 'learning.json'}\n{out / 'learning.html'}  "
        f"({time.perf_counter() - start:.0f} s in all)"
    )


def register(app: typer.Typer) -> None:
    """Add ``learning`` to the ``medgym`` app."""
    app.command("learning")(learning_command)
