"""GRPO with TRL on medgym: the run config, the trainer builder and a short demo run.

The default is the embedded default: the warm-started tiny Qwen2.5-VL, the bundled ``synthetic``
set, the label-free reward, CPU, a handful of steps. With ``model`` set to a Qwen2.5-VL
checkpoint and a GPU, the same code runs a real experiment.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgym.envs.config import SessionConfig
from medgym.envs.profiles import (
    DEFAULT_PROFILE,
    ModelProfile,
    get_profile,
    load_checkpoint_profile,
)
from medgym.errors import ConfigError, DependencyNotInstalled

__all__ = [
    "MedGymArguments",
    "build_dataset",
    "build_trainer",
    "default_grpo_config",
    "demo_train",
    "resolve_checkpoint_profile",
    "suppress_vision_tokens",
    "tiny_task_for",
]

logger = logging.getLogger(__name__)

#: GRPOConfig values of the embedded default (CPU, tiny model, a few steps).
CPU_DEFAULTS: dict[str, Any] = {
    "use_cpu": True,
    "max_steps": 4,
    "num_generations": 4,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    # medgym learning's tiny RL setting (TINY_GRPO): lr 1e-4 with the replies' entropy
    # minimised; at 5e-4 (or 1e-4 without the entropy term) the tiny agent stops using its
    # tools within 25 steps (docs/training_trl.md)
    "learning_rate": 1e-4,
    "entropy_coef": -1.0,
    "max_completion_length": 320,
    "temperature": 1.0,
    "beta": 0.0,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "seed": 0,
    "max_tool_calling_iterations": 1,  # the tiny agent's one look (TINY_SESSION: 2 turns)
    "dataloader_num_workers": 0,
    "bf16": False,
}


@dataclass(frozen=True, kw_only=True)
class MedGymArguments:
    """medgym's side of a TRL run (the GRPO knobs are trl's ``GRPOConfig``)."""

    model: str = field(
        default="",
        metadata={
            "help": "Model folder (a Qwen2.5-VL checkpoint); empty: the warm-started tiny model."
        },
    )
    dataset: str = field(
        default="synthetic", metadata={"help": "medgym dataset name (medgym.data.load)."}
    )
    dataset_root: str | None = field(
        default=None, metadata={"help": "Data root for file-backed datasets."}
    )
    split: str = field(
        default="train",
        metadata={
            "help": "Split to train on (the generated sets default to `test` when loaded "
            "without one; evaluation reads `test`)."
        },
    )
    num_samples: int = field(
        default=16,
        metadata={
            "help": "Samples to train on: drawn from a generated set, the first ones of a "
            "release on disk."
        },
    )
    profile: str = field(
        default="",
        metadata={
            "help": "Model profile name (qwen2.5-vl, tiny-vlm...); empty: the profile the "
            "checkpoint recorded (medgym_profile.json), else qwen2.5-vl."
        },
    )
    reward: str = field(default="label_free", metadata={"help": "Group reward registry name."})
    embedder: str = field(
        default="hashing",
        metadata={
            "help": "Embedder for FPL/HSR (hashing: offline and fast; minilm for real runs)."
        },
    )
    penalty_weight: float = field(
        default=1.0,
        metadata={"help": "Scale of the session penalties (SessionConfig.penalties x weight)."},
    )
    max_turns: int | None = field(
        default=None,
        metadata={
            "help": "Model turns per episode; default: the tiny agent's budget (TINY_SESSION) "
            "for a tiny-vlm checkpoint, else the session default (6)."
        },
    )
    max_images: int | None = field(
        default=None,
        metadata={"help": "New images an episode may show; default as for max_turns."},
    )
    tools: str = field(
        default="",
        metadata={"help": "Comma-separated tools; empty: zoom_in,crop,reground."},
    )
    session: str = field(
        default="",
        metadata={
            "help": "Other SessionConfig fields as JSON, e.g. '{\"max_calls_per_turn\": 2}' "
            "(unknown keys are refused)."
        },
    )
    freeze_vision: bool | None = field(
        default=None,
        metadata={
            "help": "Keep the vision tower out of training (RL trains the language model). "
            "Default: on for a tiny-vlm checkpoint (where training the tower erodes the warm "
            "start's perception, docs/learning.md), off for other models."
        },
    )
    warm_start_steps: int = field(
        default=800, metadata={"help": "Warm start optimiser steps (tiny model)."}
    )
    metrics_file: str = field(
        default="medgym_metrics.jsonl", metadata={"help": "JSONL under output_dir."}
    )

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1; got {self.num_samples}")
        self.session_config()  # a bad or unknown session key fails here, named

    def session_config(self, *, task: str | None = None) -> SessionConfig:
        """The episodes' :class:`SessionConfig` (penalties scaled by ``penalty_weight``).

        Args:
            task: The tiny task a tiny-vlm checkpoint trains on
                (:data:`~medgym.agents.tiny_vlm.TINY_TASKS`): start from the budgets it was
                warm-started with, so RL plays the episodes the warm start taught; fields set
                here still win. ``None``: the session defaults.

        Raises:
            ConfigError: ``session`` is not a JSON object, or a key or value is bad.
        """
        extra: Any = {}
        if self.session.strip():
            try:
                extra = json.loads(self.session)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--session must be a JSON object; got {self.session!r}") from e
            if not isinstance(extra, dict):
                raise ConfigError(f"--session must be a JSON object; got {self.session!r}")
        values: dict[str, Any] = {}
        if task is not None:
            from medgym.agents.tiny_vlm.builder import get_tiny_task

            values.update(get_tiny_task(task).session)
        if self.tools.strip():
            values["tools"] = [t.strip() for t in self.tools.split(",") if t.strip()]
        for key in ("max_turns", "max_images"):
            if getattr(self, key) is not None:
                values[key] = getattr(self, key)
        values.update(extra)
        return SessionConfig.from_dict(values).with_penalty_weight(self.penalty_weight)

    def dataset_kwargs(self, *, task: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`medgym.data.load` (with the tiny ``task``'s settings)."""
        from medgym.data import loader_takes

        # generated sets draw `num_samples`; a release on disk keeps its first `num_samples`
        size = "num_samples" if loader_takes(self.dataset, "num_samples") else "limit"
        kwargs: dict[str, Any] = {"split": self.split, size: self.num_samples}
        if task is not None:
            from medgym.agents.tiny_vlm.builder import get_tiny_task

            kwargs.update(get_tiny_task(task).load)
        if self.dataset_root:
            kwargs["root"] = self.dataset_root
        return kwargs


def _require_trl() -> Any:
    try:
        import trl
    except ImportError as e:
        raise DependencyNotInstalled("TRL training needs `pip install medgym[trl]`") from e
    return trl


def default_grpo_config(output_dir: str | Path, **overrides: Any) -> Any:
    """A ``GRPOConfig`` with :data:`CPU_DEFAULTS`, then ``overrides``."""
    trl = _require_trl()
    return trl.GRPOConfig(output_dir=str(output_dir), **{**CPU_DEFAULTS, **overrides})


def build_dataset(samples: list[Any], *, profile: Any, config: Any) -> Any:
    """A ``datasets.Dataset`` of conversational prompts, one row per sample.

    Each row holds ``prompt`` (system and user messages, image parts first), ``images`` (the
    first views, rendered at the profile's size so boxes mean what the model sees) and
    ``sample_id`` (read by :meth:`MedGymToolEnv.reset`).
    """
    from datasets import Dataset
    from PIL import Image

    from medgym.envs.session import EpisodeSession

    rows = []
    for sample in samples:
        s = EpisodeSession(sample, config=config, profile=profile)
        prompt = []
        for m in s.conversation("spec")[:2]:
            content = [
                {"type": "image", "text": None}
                if p["type"] == "image"
                else {"type": "text", "text": p["text"]}
                for p in m["content"]
            ]
            prompt.append({"role": m["role"], "content": content})
        images = [Image.fromarray(s.pixels(i)) for i in range(len(s.images))]
        rows.append({"prompt": prompt, "images": images, "sample_id": sample.id})
    return Dataset.from_list(rows)


def resolve_checkpoint_profile(model_path: str | Path, name: str = "") -> ModelProfile:
    """The profile to train ``model_path`` with: ``name``, else the recorded one, else default.

    ``tiny`` is accepted as the old spelling of ``tiny-vlm``. A name that disagrees with the
    profile the checkpoint recorded is used as asked, with a warning.
    """
    own = load_checkpoint_profile(model_path) if Path(model_path).is_dir() else None
    if not name:
        return own or get_profile(DEFAULT_PROFILE)
    chosen = get_profile("tiny-vlm" if name == "tiny" else name)
    if own is not None and own != chosen:
        logger.warning(
            "%s was trained with profile `%s` but is trained on with `%s` as asked",
            model_path,
            own.name,
            chosen.name,
        )
    return chosen


def tiny_task_for(model_path: str | Path, dataset: str) -> str | None:
    """The tiny task a tiny-vlm checkpoint trains on when given ``dataset``.

    The task the checkpoint recorded (``medgym_task.json``) if it is on ``dataset``, else the
    tiny task on ``dataset`` (``synthetic``, ``synthetic3d``), else ``None`` (another dataset:
    its own settings).
    """
    from medgym.agents.tiny_vlm.builder import TINY_TASKS, get_tiny_task, load_checkpoint_task

    recorded = load_checkpoint_task(model_path) if Path(model_path).is_dir() else None
    if recorded is not None and get_tiny_task(recorded).dataset == dataset:
        return recorded
    return next((name for name, task in TINY_TASKS.items() if task.dataset == dataset), None)


#: Model config fields naming the vision special tokens a policy must never sample.
_VISION_TOKEN_FIELDS = ("image_token_id", "video_token_id", "vision_start_token_id",
                        "vision_end_token_id")  # fmt: skip


def suppress_vision_tokens(gargs: Any, model: Any) -> list[int]:
    """Add the model's vision special tokens to ``gargs.generation_kwargs["suppress_tokens"]``.

    TRL suppresses only the image token when it samples. A sampled ``<|video_pad|>`` (or a
    vision start/end token) in a completion marks a video the batch has no grid for, and the
    loss's forward pass fails in ``get_rope_index`` (``'NoneType' object is not an iterator``):
    the tiny agent's run died so at step 41 of 80. The model's own ``suppress_tokens`` (the tiny
    model's generation config lists these four) and any set in ``generation_kwargs`` are kept.

    Returns:
        The suppressed token ids.
    """
    ids = {getattr(model.config, name, None) for name in _VISION_TOKEN_FIELDS}
    ids |= set(getattr(model.generation_config, "suppress_tokens", None) or [])
    kwargs = dict(gargs.generation_kwargs or {})
    ids |= set(kwargs.get("suppress_tokens") or [])
    kwargs["suppress_tokens"] = sorted(int(i) for i in ids if i is not None)
    gargs.generation_kwargs = kwargs
    return kwargs["suppress_tokens"]


def build_trainer(margs: MedGymArguments, gargs: Any) -> tuple[Any, Any]:
    """Build ``(GRPOTrainer, SessionGroupReward)`` from the two configs.

    The trainer records the profile (and a tiny model's task) in every checkpoint it saves
    (:class:`~medgym.integrations.trl.checkpoints.CheckpointRecords`); save the final model
    with :func:`~medgym.integrations.trl.checkpoints.save_trained` to record them there too.

    Raises:
        ConfigError: If the GRPO batch would split groups across processes.
    """
    trl = _require_trl()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medgym.agents.tiny_vlm import WarmStartConfig, warm_start
    from medgym.agents.tiny_vlm.processor import register_processor
    from medgym.data import load
    from medgym.integrations.trl.checkpoints import CheckpointRecords
    from medgym.integrations.trl.environment import make_environment_factory
    from medgym.integrations.trl.metrics import MetricsSink
    from medgym.integrations.trl.rewards import SessionGroupReward
    from medgym.integrations.trl.template import prepare_processor
    from medgym.learning.grpo import freeze_vision_tower

    per_process = gargs.per_device_train_batch_size * gargs.steps_per_generation
    if per_process % gargs.num_generations:
        raise ConfigError(
            f"each process must hold whole groups: per_device_train_batch_size * "
            f"steps_per_generation = {per_process} is not a multiple of num_generations="
            f"{gargs.num_generations}"
        )
    model_path = margs.model or str(warm_start(WarmStartConfig(max_steps=margs.warm_start_steps)))
    profile = resolve_checkpoint_profile(model_path, margs.profile)
    register_processor()
    processor = prepare_processor(AutoProcessor.from_pretrained(model_path))
    model = AutoModelForImageTextToText.from_pretrained(model_path)
    suppress_vision_tokens(gargs, model)
    tiny = profile.name == "tiny-vlm"
    if margs.freeze_vision or (margs.freeze_vision is None and tiny):
        freeze_vision_tower(model)
    # a tiny model trains on its warm start's task and budgets, as it was trained
    task = tiny_task_for(model_path, margs.dataset) if tiny else None
    samples = list(load(margs.dataset, **margs.dataset_kwargs(task=task)))
    session_cfg = margs.session_config(task=task)
    if (gargs.max_tool_calling_iterations or 0) >= session_cfg.max_turns:
        logger.info(
            "max_tool_calling_iterations=%s but episodes end after %d turns: the session ends "
            "longer rollouts",
            gargs.max_tool_calling_iterations,
            session_cfg.max_turns,
        )
    options = {"embedder": margs.embedder} if margs.reward in ("label_free", "medvr", "hsr") else {}
    reward = SessionGroupReward(
        num_generations=gargs.num_generations,
        reward=margs.reward,
        reward_options=options,
        sink=MetricsSink(Path(gargs.output_dir) / margs.metrics_file),
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=gargs,
        train_dataset=build_dataset(samples, profile=profile, config=session_cfg),
        processing_class=processor,
        environment_factory=make_environment_factory(samples, config=session_cfg, profile=profile),
        callbacks=[CheckpointRecords(profile, task)],
    )
    return trainer, reward


def demo_train(steps: int = 3, out: str | Path = "runs/trl-demo", **overrides: Any) -> list[dict]:
    """A short GRPO run of the embedded default; returns the per-step reward curve.

    Args:
        steps: Optimiser steps.
        out: Output folder (metrics JSONL, trainer logs).
        **overrides: Extra ``GRPOConfig`` values.

    Returns:
        One dict per reward call: ``step``, ``reward``, ``tool_call_rate``, the reward parts
        (``part/...``) and, for label-free rewards, ``pseudo_label_confidence``.
    """
    trainer, reward = build_trainer(
        MedGymArguments(), default_grpo_config(out, max_steps=steps, **overrides)
    )
    trainer.train()
    return [{k: v for k, v in r.items() if k != "rewards"} for r in reward.history]
