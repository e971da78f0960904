"""Build, save and reload a tiny randomly initialised Qwen2.5-VL, entirely offline.

The model is a real ``Qwen2_5_VLForConditionalGeneration`` (vision tower, merger, M-RoPE,
decoder) shrunk to a few hundred thousand parameters, so every code path of a production
Qwen2.5-VL runs in tests in milliseconds. Weights are never committed: tests build them into a
temporary or cache folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgym.envs.profiles import (
    ModelProfile,
    get_profile,
    read_checkpoint_record,
    save_checkpoint_profile,
)
from medgym.errors import ConfigError, DependencyNotInstalled

__all__ = [
    "TASK_FILE",
    "TINY3D_SESSION",
    "TINY3D_TASK",
    "TINY_PROFILE",
    "TINY_SESSION",
    "TINY_TASK",
    "TINY_TASKS",
    "TinyTask",
    "TinyVLMConfig",
    "build_tiny_vlm",
    "get_tiny_task",
    "load_checkpoint_task",
    "load_tiny_vlm",
    "save_checkpoint_records",
    "save_checkpoint_task",
]

logger = logging.getLogger(__name__)

#: Profile the tiny model is driven with (the registered ``tiny-vlm`` profile): Qwen2.5-VL
#: conventions with 168 px views (36 image tokens each), boxes in 0-1000 and no tool block in
#: the system prompt (the ~500-token block would dominate every sequence; the tiny model learns
#: the call format from examples). Every checkpoint the builder writes records it.
TINY_PROFILE: ModelProfile = get_profile("tiny-vlm")

#: ``synthetic`` settings of the task the tiny model is built for (``load("synthetic",
#: **TINY_TASK)``): ``presence`` questions ("Is there a nodule inside the region x 41-55%, y
#: 18-32%?") on 512 px images whose findings are 2x the usual size (``finding_scale``), with a
#: mean brightness (``density`` 0.5) and on plain tissue (``anatomy`` 0: no ribs, organs or
#: decoys behind them). A vision tower trained from scratch in CPU minutes sees a finding only
#: when it fills a good part of a plain view: answer-only probes (``docs/learning.md``) learn
#: this setting's zoomed views to 97% in 300 steps, and stay at chance with the anatomy drawn,
#: with findings of the usual size, or on the kind/shape/count families. In the 168 px first
#: view every finding of the image is a small blob of a few patches and the question's region
#: has to be found in it, which the tiny model does not do: the zoom on the region carries the
#: answer.
TINY_TASK: dict[str, Any] = {
    "image_size": 512,
    "contrast": 10.0,
    "density": 0.5,
    "finding_scale": 2.5,
    "anatomy": 0.0,
    "families": ("zone_presence",),
}

#: Session budgets of the tiny agent's episodes, the same in the warm start, RL and evaluation
#: (``SessionConfig.from_dict(TINY_SESSION)``): one look, then the answer (the reply to the
#: look says it is the last turn). At most one tool call per episode.
TINY_SESSION: dict[str, Any] = {
    "tools": ["zoom_in", "crop", "reground"],
    "max_turns": 2,
    "max_images": 1,
    "max_calls_per_turn": 1,
}


#: ``synthetic3d`` settings of the tiny agent's volume task (``load("synthetic3d",
#: **TINY3D_TASK)``): the default 64-slice volumes, with the questions one ``overview`` can
#: answer (presence, which half, which side); ``size`` needs ``scroll``, ``set_plane`` and
#: ``measure``, more turns than the tiny budget.
TINY3D_TASK: dict[str, Any] = {"families": ("presence", "location", "side")}

#: Session budgets of the volume task: one look (an ``overview`` of the stack, or a ``scroll``
#: to a slice), then the answer.
TINY3D_SESSION: dict[str, Any] = {
    "tools": ["overview", "scroll"],
    "max_turns": 2,
    "max_images": 1,
    "max_calls_per_turn": 1,
}


@dataclass(frozen=True)
class TinyTask:
    """A task the tiny agent is warm-started, trained and evaluated on.

    Attributes:
        dataset: Dataset registry name.
        load: Keyword arguments of ``load(dataset, ...)`` (split, size and seed aside).
        session: ``SessionConfig.from_dict`` options of every episode (warm start, RL, eval).
    """

    dataset: str
    load: dict[str, Any]
    session: dict[str, Any]

    def samples(self, split: str, num_samples: int, seed: int = 0) -> list[Any]:
        """``num_samples`` samples of ``split``, drawn with ``seed``."""
        from medgym.data import load

        return load(self.dataset, split=split, num_samples=num_samples, seed=seed, **self.load)


#: The tiny agent's tasks by name: ``synthetic`` (the default, 2D zones) and ``synthetic3d``.
TINY_TASKS: dict[str, TinyTask] = {
    "synthetic": TinyTask("synthetic", TINY_TASK, TINY_SESSION),
    "synthetic3d": TinyTask("synthetic3d", TINY3D_TASK, TINY3D_SESSION),
}


def get_tiny_task(name: str) -> TinyTask:
    """The :data:`TINY_TASKS` entry ``name``.

    Raises:
        ConfigError: An unknown name (the known ones listed).
    """
    if name not in TINY_TASKS:
        raise ConfigError(f"unknown tiny task `{name}`; known: {', '.join(TINY_TASKS)}")
    return TINY_TASKS[name]


#: File in a checkpoint folder naming the tiny task it was trained on (``{"task": name}``).
TASK_FILE = "medgym_task.json"


def save_checkpoint_task(path: str | Path, name: str) -> Path:
    """Record in the checkpoint folder ``path`` that it was trained on the tiny task ``name``.

    ``medgym eval --policy hf:PATH`` then evaluates it on that task's data settings and session
    budgets unless told otherwise (:func:`load_checkpoint_task`).

    Raises:
        ConfigError: ``name`` is not a tiny task.
    """
    get_tiny_task(name)
    out = Path(path) / TASK_FILE
    out.write_text(json.dumps({"task": name}), encoding="utf-8")
    return out


def save_checkpoint_records(
    path: str | Path, profile: str | ModelProfile, task: str | None = None
) -> None:
    """Record in the checkpoint folder ``path`` its profile and, when trained on one, tiny task.

    What ``medgym eval --policy hf:PATH`` and further training read back
    (:func:`~medgym.envs.profiles.load_checkpoint_profile`, :func:`load_checkpoint_task`).

    Raises:
        ConfigError: An unknown profile or tiny task.
    """
    save_checkpoint_profile(path, profile)
    if task is not None:
        save_checkpoint_task(path, task)


def load_checkpoint_task(path: str | Path) -> str | None:
    """The tiny task a checkpoint folder recorded, or ``None`` when it recorded none.

    Raises:
        ConfigError: ``medgym_task.json`` exists but does not name a tiny task.
    """
    data = read_checkpoint_record(path, TASK_FILE)
    if data is None:
        return None
    name = data.get("task") if isinstance(data, dict) else None
    if not isinstance(name, str):
        file = Path(path) / TASK_FILE
        raise ConfigError(f'{file} must hold {{"task": NAME}}; got {data!r:.80}')
    get_tiny_task(name)
    return name


@dataclass(frozen=True, kw_only=True)
class TinyVLMConfig:
    """Sizes of the tiny model.

    Attributes:
        hidden_size: Text hidden size (also the vision merger's output size).
        num_layers: Decoder layers.
        num_heads: Attention heads of the decoder (key/value heads: half as many).
        intermediate_size: Decoder MLP width.
        vision_hidden_size: Vision tower width.
        vision_depth: Vision tower blocks.
        vocab_size: Target BPE vocabulary size.
        corpus_samples: ``synthetic`` samples whose episodes train the tokenizer.
        seed: Seed of the random initialisation.
    """

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    vision_hidden_size: int = 128
    vision_depth: int = 4
    vocab_size: int = 768
    corpus_samples: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "vision_hidden_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.hidden_size % (2 * self.num_heads):
            raise ConfigError(
                f"hidden_size must be a multiple of 2 * num_heads; got {self.hidden_size} and "
                f"{self.num_heads} heads"
            )


def _require_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise DependencyNotInstalled.for_extra("torch", "hf") from e
    return torch


def build_tiny_vlm(path: str | Path, config: TinyVLMConfig | None = None) -> Path:
    """Train the tokenizer, initialise the model and save model + processor to ``path``.

    Args:
        path: Output folder (created).
        config: Model sizes; defaults to :class:`TinyVLMConfig`.

    Returns:
        ``path``, loadable with :func:`load_tiny_vlm` or the transformers Auto classes.
    """
    torch = _require_torch()
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from medgym.agents.tiny_vlm.processor import ImageOnlyQwenVLProcessor, register_processor
    from medgym.agents.tiny_vlm.tokenizer import CHAT_TEMPLATE, build_tokenizer, corpus

    cfg = config or TinyVLMConfig()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        corpus(cfg.corpus_samples, profile=TINY_PROFILE, **TINY_TASK), vocab_size=cfg.vocab_size
    )
    ids: dict[str, Any] = {
        t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens
    }
    head_dim = cfg.hidden_size // cfg.num_heads
    # M-RoPE splits the rotary half-dimension into (temporal, height, width) sections.
    half = head_dim // 2
    section = [half - 2 * (half // 4), half // 4, half // 4]
    model_config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_heads,
            "num_key_value_heads": max(1, cfg.num_heads // 2),
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": section,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": cfg.vision_depth,
            "hidden_size": cfg.vision_hidden_size,
            "intermediate_size": 2 * cfg.vision_hidden_size,
            "num_heads": max(1, cfg.vision_hidden_size // 32),
            "out_hidden_size": cfg.hidden_size,
            "fullatt_block_indexes": [cfg.vision_depth - 1],
            "window_size": 56,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(cfg.seed)
    model = Qwen2_5_VLForConditionalGeneration(model_config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    # A vision placeholder in a generated turn has no pixels behind it: the next forward pass
    # fails ("image features and image tokens do not match"). Trained checkpoints never write
    # one; a randomly initialised one does, so generation never samples them.
    model.generation_config.suppress_tokens = [
        ids[t] for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    ]
    model.save_pretrained(out)
    register_processor()
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=28 * 28, max_pixels=TINY_PROFILE.max_pixels * 4
    )
    processor = ImageOnlyQwenVLProcessor(image_processor, tokenizer, chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    save_checkpoint_profile(out, TINY_PROFILE)
    n = sum(p.numel() for p in model.parameters())
    logger.info("built tiny Qwen2.5-VL with %d parameters at %s", n, out)
    return out


def load_tiny_vlm(path: str | Path, *, device: str = "cpu") -> tuple[Any, Any]:
    """Reload a saved (tiny or real) image-text model through the transformers Auto classes.

    Returns:
        ``(model, processor)``; the model is in eval mode on ``device``.
    """
    _require_torch()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medgym.agents.tiny_vlm.processor import register_processor

    register_processor()
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"no model at {folder}: expected a config.json (build_tiny_vlm writes one)"
        )
    model: Any = AutoModelForImageTextToText.from_pretrained(folder)
    model = model.to(device).eval()
    processor = AutoProcessor.from_pretrained(folder)
    return model, processor
