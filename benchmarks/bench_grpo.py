"""GRPO step cost on CPU: TRL's ``GRPOTrainer`` (medgym's TRL integration) vs ``LockstepGRPO``.

Both train the same warm-started tiny model on the same ``synthetic`` samples (the tiny task,
labels removed) with the same session (``TINY_SESSION``), the same label-free reward and the same
batch: ``--prompts`` samples x ``--generations`` rollouts per optimiser step. The table gives
seconds per step and episodes per second of each, and the ratio against TRL measured in the same
run. Steps after the first are timed (the first includes set-up). The answer rate shows that
both did the same work: episodes that end before their answer are cheaper and worth nothing.

Run: ``python benchmarks/bench_grpo.py [--steps 4 --prompts 8 --generations 4]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from rich.console import Console
from rich.table import Table

console = Console()


def _samples(n: int) -> list[Any]:
    from medgym.agents.tiny_vlm import TINY_TASK
    from medgym.data import load
    from medgym.learning.bench import strip_labels

    return strip_labels(load("synthetic", split="validate", num_samples=n, **TINY_TASK))


def time_lockstep(model_dir: str, steps: int, prompts: int, gens: int) -> tuple[list[float], float]:
    """Seconds of each LockstepGRPO step, and the mean answer rate of its rollouts."""
    from medgym.agents.hf_policy import HFPolicy
    from medgym.agents.tiny_vlm import TINY_SESSION
    from medgym.envs.config import SessionConfig
    from medgym.integrations.trl.rewards import SessionGroupReward
    from medgym.learning.grpo import GRPOConfig, LockstepGRPO

    policy = HFPolicy.from_pretrained(model_dir, seed=0)
    reward = SessionGroupReward(
        num_generations=gens, reward="label_free", reward_options={"embedder": "hashing"}
    )
    trainer = LockstepGRPO(
        policy, _samples(prompts * steps), session_config=SessionConfig.from_dict(TINY_SESSION),
        profile=policy.profile, reward=reward,
        config=GRPOConfig(steps=steps, prompts_per_step=prompts, num_generations=gens),
    )  # fmt: skip
    history = trainer.train()
    return [r["step_seconds"] for r in history], statistics.mean(r["answer_rate"] for r in history)


def time_trl(
    model_dir: str, steps: int, prompts: int, gens: int, out: str
) -> tuple[list[float], float]:
    """Seconds of each TRL GRPOTrainer step (step callbacks), and the mean answer rate."""
    import trl
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback

    from medgym.agents.tiny_vlm import TINY_SESSION
    from medgym.agents.tiny_vlm.processor import register_processor
    from medgym.envs.config import SessionConfig
    from medgym.envs.profiles import load_checkpoint_profile
    from medgym.integrations.trl.environment import make_environment_factory
    from medgym.integrations.trl.rewards import SessionGroupReward
    from medgym.integrations.trl.template import prepare_processor
    from medgym.integrations.trl.train import build_dataset, default_grpo_config

    register_processor()
    profile = load_checkpoint_profile(model_dir)
    processor = prepare_processor(AutoProcessor.from_pretrained(model_dir))
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    samples = _samples(prompts * steps)
    session = SessionConfig.from_dict(TINY_SESSION)
    reward = SessionGroupReward(
        num_generations=gens, reward="label_free", reward_options={"embedder": "hashing"}
    )
    args = default_grpo_config(
        out, max_steps=steps, num_generations=gens, per_device_train_batch_size=prompts * gens,
        max_tool_calling_iterations=TINY_SESSION["max_turns"] - 1,
        logging_steps=10_000, disable_tqdm=True,
    )  # fmt: skip
    marks: list[float] = []

    class _Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            marks.append(time.perf_counter())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            marks.append(time.perf_counter())

    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=[reward], args=args, processing_class=processor,
        train_dataset=build_dataset(samples, profile=profile, config=session),
        environment_factory=make_environment_factory(samples, config=session, profile=profile),
        callbacks=[_Clock()],
    )  # fmt: skip
    trainer.train()
    answered = statistics.mean(r["answer_rate"] for r in reward.history)
    return [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)], answered


def main() -> None:
    """Parse the options, time both trainers, print the table."""
    from medgym.agents.tiny_vlm import WarmStartConfig, warm_start
    from medgym.learning.cli import quiet_libraries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--warm-steps", type=int, default=500)
    ns = parser.parse_args()
    quiet_libraries()
    model_dir = str(warm_start(WarmStartConfig(max_steps=ns.warm_steps), progress=True))
    episodes = ns.prompts * ns.generations
    with tempfile.TemporaryDirectory() as tmp:
        trl_s = time_trl(model_dir, ns.steps, ns.prompts, ns.generations, tmp)
    lock_s = time_lockstep(model_dir, ns.steps, ns.prompts, ns.generations)
    table = Table(title=f"GRPO step, {ns.prompts} prompts x {ns.generations} rollouts, CPU")
    for col in ("trainer", "s/step (median, steps 2+)", "episodes/s", "vs TRL", "answer rate"):
        table.add_column(col, justify="right")
    base = statistics.median(trl_s[0][1:] or trl_s[0])
    for name, (secs, answered) in (("TRL GRPOTrainer", trl_s), ("LockstepGRPO", lock_s)):
        med = statistics.median(secs[1:] or secs)
        table.add_row(
            name, f"{med:.2f}", f"{episodes / med:.1f}", f"{base / med:.2f}x", f"{answered:.2f}"
        )
    console.print(table)


if __name__ == "__main__":
    main()
