"""Checkpoints of a TRL run that record their profile and tiny task, as the other trainers' do.

``medgym eval --policy hf:PATH`` and further training read ``medgym_profile.json`` (the views,
box convention and prompts the model learned) and ``medgym_task.json`` (the tiny task's data and
session budgets) from a checkpoint folder. ``GRPOTrainer`` saves the weights and the processor
only: a tiny agent trained by ``training/run_trl.py`` was then evaluated with the default
``qwen2.5-vl`` profile and the default data mix, and answered nothing (accuracy 0.0).
:class:`CheckpointRecords` writes both files into every ``checkpoint-N`` folder the trainer
saves, and :func:`save_trained` into the final one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from medgym.agents.tiny_vlm.builder import save_checkpoint_records
from medgym.envs.profiles import ModelProfile
from medgym.errors import ConfigError

__all__ = ["CheckpointRecords", "save_trained"]


class CheckpointRecords(TrainerCallback):
    """Write the run's profile (and tiny task) into each checkpoint the trainer saves.

    Args:
        profile: The profile the episodes were rendered and prompted with.
        task: The tiny task the run trained on (:data:`~medgym.agents.tiny_vlm.TINY_TASKS`),
            or ``None`` when it trained on a dataset's own settings.
    """

    def __init__(self, profile: ModelProfile, task: str | None) -> None:
        self.profile = profile
        self.task = task

    def write(self, folder: str | Path) -> None:
        """Record the profile and task in ``folder`` (a saved checkpoint)."""
        save_checkpoint_records(folder, self.profile, self.task)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After the trainer wrote ``checkpoint-<step>``: add the records (main process)."""
        if state.is_world_process_zero:
            self.write(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


def save_trained(trainer: Any, folder: str | Path) -> Path:
    """``trainer.save_model(folder)``, then the records of its :class:`CheckpointRecords`.

    Raises:
        ConfigError: The trainer was not built by :func:`~medgym.integrations.trl.build_trainer`
            (it has no :class:`CheckpointRecords` to say what to record).
    """
    records = [c for c in trainer.callback_handler.callbacks if isinstance(c, CheckpointRecords)]
    if not records:
        raise ConfigError(
            "the trainer has no CheckpointRecords callback: build it with "
            "medgym.integrations.trl.build_trainer, or add CheckpointRecords(profile, task)"
        )
    trainer.save_model(str(folder))
    if trainer.is_world_process_zero():
        records[0].write(folder)
    return Path(folder)
