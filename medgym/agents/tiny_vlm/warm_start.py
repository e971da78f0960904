"""``warm_start``: a short CPU fine-tune that teaches the tiny model medgym's turn format.

A randomly initialised model never writes a tool call, and a group whose rollouts all score the
same has zero advantage. A short supervised fine-tune on teacher episodes of the tiny task's
training split (zoom on the region the question names, then answer with the label) plays the role
of pre-training: the tiny model then writes well-formed tool calls and answers whose correctness
varies between rollouts. It runs in two stages: the teacher's zoomed views alone at a low
learning rate (where the model learns to see; at the rate the format needs it does not), then
whole episodes. It is bounded by optimiser steps, not by time, so the same settings give
the same model on any machine. The result is cached on disk under ``MEDGYM_CACHE_DIR`` (default
``~/.cache/medgym``), keyed by every setting that changes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medgym.agents.tiny_vlm.builder import (
    TASK_FILE,
    TINY_PROFILE,
    TinyVLMConfig,
    build_tiny_vlm,
    get_tiny_task,
    save_checkpoint_records,
    save_checkpoint_task,
)
from medgym.errors import ConfigError

__all__ = [
    "WarmStartConfig",
    "cache_dir",
    "collate",
    "encode_episode",
    "encode_messages",
    "sft_examples",
    "single_view_examples",
    "warm_start",
]

logger = logging.getLogger(__name__)

_VERSION = 7
_MARKER = "warm_start.json"


@dataclass(frozen=True, kw_only=True)
class WarmStartConfig:
    """Settings of the warm-start fine-tune.

    Attributes:
        num_samples: Training-split samples of the task whose teacher episodes form the data
            (each gives one episode with tools and one without).
        seed: Seed of the sample draw, the initialisation and the data order.
        max_steps: Optimiser steps: the budget of the warm start (reproducible on any machine).
        max_seconds: Optional wall-clock cap on top of ``max_steps``. Where it binds, the model
            depends on machine speed and load; leave it ``None`` for reproducible runs.
        lr: Peak AdamW learning rate of the episodes (linear warm-up over the first 5% of
            their steps, cosine decay). Above ~1e-3 the tiny model learns the format and stops
            reading the image (``docs/learning.md``).
        batch_size: Episodes per optimiser step (padded on the right).
        answer_weight: Weight of the answer's tokens (between ``<answer>`` and ``</answer>``)
            in the loss, relative to the other reply tokens. The answer is a token or two of a
            reply of ~40, so with weight 1 the format is learned long before the pixels are.
        answer_only_steps: The first this many of ``max_steps`` train on the answer's tokens
            alone (a perception stage: the same episodes, the loss only where the label is
            read off the pixels), the rest on every reply token.
        view_steps: The first this many steps train on the teacher's zoomed views alone, with
            the question and the answer (:func:`single_view_examples`), before any episode
            (``None``: three eighths of ``max_steps``, 300 of the default 800; 0: no stage).
            The stage has its own schedule (warm-up and cosine decay over its steps) and peak
            learning rate ``view_lr``; the episodes then restart the schedule at ``lr``.
            Perception is learned here: without the stage, the episodes' answers stay at
            chance whatever the learning rate.
        view_lr: Peak learning rate of the view stage (``None``: ``lr``). Perception needs a
            low one: at 2e-3 the tiny model's answer stops depending on the image within tens
            of steps (``docs/learning.md``), at 2e-4 it reads the zoomed views to 95%.
        no_tool_episodes: Also train on each sample's episode without tools (answering from
            the first view, where the tiny task's answer cannot be seen). ``False``: episodes
            with tools only.
        misdirect: Share of the teacher's zone episodes that look at another zone and
            answer what it shows (:class:`~medgym.agents.scripted.TeacherPolicy`): an
            imperfect expert, whose student sometimes looks in the wrong place, so RL has a
            decision to improve, not only sampling noise (``docs/learning.md``). 0: the
            teacher always looks where the question says.
        split: Split the data comes from (keep it apart from evaluation splits).
        task: The tiny task (:data:`~medgym.agents.tiny_vlm.builder.TINY_TASKS`): its dataset,
            load settings and session budgets.
        model: Sizes of the tiny model.
    """

    num_samples: int = 384
    seed: int = 0
    max_steps: int = 800
    max_seconds: float | None = None
    lr: float = 5e-4
    batch_size: int = 8
    answer_weight: float = 1.0
    answer_only_steps: int = 0
    view_steps: int | None = None
    view_lr: float | None = 2e-4
    no_tool_episodes: bool = True
    misdirect: float = 0.0
    split: str = "train"
    task: str = "synthetic"
    model: TinyVLMConfig = field(default_factory=TinyVLMConfig)

    def __post_init__(self) -> None:
        get_tiny_task(self.task)  # an unknown name fails here, not after the build
        if not self.answer_weight > 0:
            raise ConfigError(f"answer_weight must be > 0; got {self.answer_weight}")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1; got {self.num_samples}")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1; got {self.max_steps}")
        if not 0 <= self.view_stage_steps < self.max_steps:
            raise ConfigError(
                f"view_steps must be in [0, max_steps); got {self.view_steps} of {self.max_steps}"
            )
        if not 0 <= self.answer_only_steps < self.max_steps:
            raise ConfigError(
                f"answer_only_steps must be in [0, max_steps); got {self.answer_only_steps} of "
                f"{self.max_steps}"
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"max_seconds must be > 0 or None; got {self.max_seconds}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0; got {self.lr}")
        if self.view_lr is not None and not self.view_lr > 0:
            raise ConfigError(f"view_lr must be > 0 or None; got {self.view_lr}")
        if not 0.0 <= self.misdirect < 1.0:
            raise ConfigError(f"misdirect must be in [0, 1); got {self.misdirect}")

    @property
    def view_stage_steps(self) -> int:
        """Steps of the view stage: ``view_steps``, or three eighths of ``max_steps``."""
        return self.view_steps if self.view_steps is not None else 3 * self.max_steps // 8

    def key(self) -> str:
        """Short hash of every setting (and of the task and format version)."""
        task = get_tiny_task(self.task)
        d = asdict(self)
        if not self.answer_only_steps:  # keys of runs without the stage stay as they were
            d.pop("answer_only_steps")
        if self.no_tool_episodes:
            d.pop("no_tool_episodes")
        if not self.misdirect:
            d.pop("misdirect")
        d["view_steps"] = self.view_stage_steps
        if not self.view_stage_steps:
            d.pop("view_steps")
        if self.view_lr is None or not self.view_stage_steps:
            d.pop("view_lr")
        d["version"] = _VERSION
        d["task"] = task.load
        d["session"] = task.session
        if task.dataset != "synthetic":  # keys of the default task stay as they were
            d["dataset"] = task.dataset
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """``$MEDGYM_CACHE_DIR`` or ``~/.cache/medgym`` (:class:`~medgym.settings.MedgymSettings`)."""
    from medgym.settings import get_settings

    return get_settings().cache_dir


def encode_episode(processor: Any, session: Any) -> dict[str, Any]:
    """A finished session as model inputs with ``labels`` on the assistant replies only.

    Shared by the warm start (teacher episodes) and medgym's GRPO loop (the policy's own
    episodes): both train on exactly the tokens the chat template gives the model's turns.

    Returns:
        The processor's tensors plus ``labels`` (``-100`` outside the assistant replies; each
        reply's ``<|im_end|>`` is a target, so the model learns to stop).
    """
    return encode_messages(processor, session.conversation("hf"))


def encode_messages(processor: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Chat ``messages`` (Hugging Face format) as model inputs, labels on the assistant replies."""
    import torch

    tok = processor.tokenizer
    start_id = tok.convert_tokens_to_ids("<|im_start|>")
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    header = tok.encode("assistant\n", add_special_tokens=False)
    images = [p["image"] for m in messages for p in m["content"] if p.get("type") == "image"]
    text = processor.apply_chat_template(messages, tokenize=False)
    enc = processor(text=[text], images=images or None, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    labels = torch.full_like(enc["input_ids"], -100)
    for i, t in enumerate(ids):
        if t == start_id and ids[i + 1 : i + 1 + len(header)] == header:
            j = i + 1 + len(header)
            end = ids.index(end_id, j) if end_id in ids[j:] else len(ids) - 1
            labels[0, j : end + 1] = enc["input_ids"][0, j : end + 1]
    enc["labels"] = labels
    return dict(enc)


def _teacher_sessions(
    num_samples: int,
    seed: int,
    split: str,
    task: str,
    no_tool_episodes: bool = True,
    misdirect: float = 0.0,
) -> list[Any]:
    """Finished teacher episodes of the tiny ``task``: each sample with tools (and without)."""
    import asyncio

    from medgym.agents.policy import run_episode
    from medgym.agents.scripted import TeacherPolicy
    from medgym.envs.config import SessionConfig
    from medgym.envs.session import EpisodeSession

    spec = get_tiny_task(task)
    configs = (
        SessionConfig.from_dict(spec.session),
        SessionConfig.from_dict({**spec.session, "tools": []}),
    )[: 2 if no_tool_episodes else 1]
    # ids fixed by sample: the teacher's seeded choices (``misdirect``) repeat on every build
    sessions = [
        EpisodeSession(sample, profile=TINY_PROFILE, config=cfg, trajectory_id=f"{sample.id}#{k}")
        for sample in spec.samples(split, num_samples, seed)
        for k, cfg in enumerate(configs)
    ]
    for session in sessions:
        asyncio.run(run_episode(TeacherPolicy(misdirect=misdirect), session))
    return sessions


def _zoomed_view(session: Any) -> list[dict[str, Any]] | None:
    """The episode's last view alone with the question and the answer (None: no zoom in it)."""
    messages = session.conversation("hf")
    images = [p for m in messages for p in m["content"] if p.get("type") == "image"]
    if len(images) < 2:
        return None
    question = [p for p in messages[1]["content"] if p.get("type") == "text"]
    return [messages[0], {"role": "user", "content": [images[-1], *question]}, messages[-1]]


def sft_examples(
    processor: Any,
    num_samples: int,
    seed: int,
    split: str = "train",
    task: str = "synthetic",
    no_tool_episodes: bool = True,
) -> list[dict[str, Any]]:
    """Tokenised teacher episodes of the tiny ``task``, with labels on the assistant turns only.

    Every sample gives two episodes: with tools (the teacher's look: a zoom on the region the
    question names, or an overview of a volume; then the answer) and without (answer at once,
    under the no-tool prompt), so the model learns both; ``no_tool_episodes=False`` keeps the
    first only.

    Returns:
        One :func:`encode_episode` dict per episode.
    """
    sessions = _teacher_sessions(num_samples, seed, split, task, no_tool_episodes)
    return [encode_episode(processor, session) for session in sessions]


def single_view_examples(
    processor: Any, num_samples: int, seed: int, split: str = "train", task: str = "synthetic"
) -> list[dict[str, Any]]:
    """The teacher's zoomed view alone, with the question and the answer: a perception stage.

    No first view, no tool call, no format to learn: the view the answer is read from and the
    answer. Samples whose teacher episode has no zoom are left out.

    Returns:
        One :func:`encode_messages` dict per sample with a zoom.
    """
    sessions = _teacher_sessions(num_samples, seed, split, task, no_tool_episodes=False)
    return _single_views(processor, sessions)


def _single_views(processor: Any, sessions: list[Any]) -> list[dict[str, Any]]:
    """:func:`encode_messages` of the zoomed view of every session that has one."""
    views = [_zoomed_view(session) for session in sessions]
    return [encode_messages(processor, v) for v in views if v is not None]


_PAD = {"attention_mask": 0, "mm_token_type_ids": 0, "labels": -100}


def collate(examples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad per-token tensors to one length; concatenate the images in batch order."""
    import torch

    length = max(e["input_ids"].shape[1] for e in examples)
    batch: dict[str, Any] = {}
    for key in examples[0]:
        if key in ("pixel_values", "image_grid_thw"):
            batch[key] = torch.cat([e[key] for e in examples], dim=0)
            continue
        fill = pad_id if key == "input_ids" else _PAD.get(key, 0)
        rows = [
            torch.nn.functional.pad(e[key], (0, length - e[key].shape[1]), value=fill)
            for e in examples
        ]
        batch[key] = torch.cat(rows, dim=0)
    return batch


def _loss(
    model: Any,
    batch: dict[str, Any],
    answer_ids: tuple[int, int],
    weight: float,
    answer_only: bool = False,
) -> Any:
    """Next-token cross-entropy over the labelled tokens, the answer's weighted by ``weight``.

    With ``answer_only`` the other tokens weigh 0: only the answer's tokens are trained.
    """
    import torch

    if weight == 1.0 and not answer_only:
        return model(**batch).loss
    labels = batch["labels"]
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    target, pred = labels[:, 1:], logits[:, :-1].float()
    ce = torch.nn.functional.cross_entropy(
        pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
    ).view_as(target)
    start, end = answer_ids
    # inside an answer: after an <answer> and up to its </answer> (both excluded)
    opened = (labels == start).long().cumsum(1) - (labels == end).long().cumsum(1)
    inside = (opened > 0) & (labels != start)
    w = torch.where(inside[:, 1:], weight, 0.0 if answer_only else 1.0) * (target != -100)
    return (ce * w).sum() / w.sum().clamp_min(1.0)


def _stage_lr(cfg: WarmStartConfig, step: int) -> float:
    """Learning rate at ``step``: the view stage's schedule, then the episodes' own."""
    views = cfg.view_stage_steps
    if step < views:
        return (cfg.view_lr or cfg.lr) * _lr_factor(step, views)
    return cfg.lr * _lr_factor(step - views, cfg.max_steps - views)


def _lr_factor(step: int, total: int) -> float:
    """Linear warm-up over the first 5% of ``total`` steps, then cosine decay to 10%."""
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[int, float], None]]:
    """A rich progress bar of optimiser steps (a no-op callback when disabled)."""
    if not enabled:
        yield lambda step, loss: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("warm start"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("warm start", total=total, loss=float("nan"))
        yield lambda step, loss: bar.update(task, completed=step, loss=loss)


def warm_start(
    config: WarmStartConfig | None = None,
    *,
    cache: str | Path | None = None,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Build the tiny model and fine-tune it on oracle episodes, or reuse the cached result.

    Args:
        config: Settings; the cache key is derived from them.
        cache: Cache folder (default :func:`cache_dir`).
        force: Rebuild even when a cached result exists.
        progress: Show a progress bar of the optimiser steps.

    Returns:
        The folder of the warm-started model (load with :func:`load_tiny_vlm` or
        :meth:`HFPolicy.from_pretrained`); ``warm_start.json`` in it records the run.
    """
    import torch

    from medgym.agents.tiny_vlm.builder import load_tiny_vlm

    cfg = config or WarmStartConfig()
    root = Path(cache) if cache is not None else cache_dir()
    folder = root / f"tiny-qwen2.5-vl-{cfg.key()}"
    if (folder / _MARKER).is_file() and not force:
        logger.info("warm-started tiny model found at %s", folder)
        if not (folder / TASK_FILE).is_file():  # cached before checkpoints recorded their task
            save_checkpoint_task(folder, cfg.task)
        return folder
    start = time.perf_counter()  # an optional time cap covers building and data too
    tmp = root / f".{folder.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_vlm(tmp, cfg.model)
    model, processor = load_tiny_vlm(tmp)
    # one run of the teacher's episodes feeds both stages
    sessions = _teacher_sessions(
        cfg.num_samples, cfg.seed, cfg.split, cfg.task, cfg.no_tool_episodes, cfg.misdirect
    )
    examples = [encode_episode(processor, session) for session in sessions]
    torch.manual_seed(cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _stage_lr(cfg, k) / cfg.lr)
    order = torch.Generator().manual_seed(cfg.seed)
    train_start, step, losses = time.perf_counter(), 0, []
    pad_id = processor.tokenizer.pad_token_id
    tok = processor.tokenizer
    answer_ids = (tok.convert_tokens_to_ids("<answer>"), tok.convert_tokens_to_ids("</answer>"))
    timed_out = False
    views: list[dict[str, Any]] = []
    view_steps = cfg.view_stage_steps
    if view_steps:
        views = _single_views(processor, sessions)
        if not views:
            raise ConfigError(f"view_steps needs zoomed teacher views; task {cfg.task} has none")

    def batches(pool: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        while True:  # epochs of ``pool`` in a fresh order each
            perm = torch.randperm(len(pool), generator=order).tolist()
            for i in range(0, len(perm), cfg.batch_size):
                yield collate([pool[k] for k in perm[i : i + cfg.batch_size]], pad_id)

    view_batches, episode_batches = batches(views), batches(examples)
    with _progress(cfg.max_steps, progress) as bar:
        while step < cfg.max_steps and not timed_out:
            # stages in order: zoomed views alone, then episodes (answer only, then all)
            batch = next(view_batches if step < view_steps else episode_batches)
            stage = view_steps <= step < view_steps + cfg.answer_only_steps
            loss = _loss(model, batch, answer_ids, cfg.answer_weight, answer_only=stage)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
            bar(step, losses[-1])
            timed_out = (
                cfg.max_seconds is not None and time.perf_counter() - start >= cfg.max_seconds
            )
    model.eval()
    model.save_pretrained(tmp)
    tail = losses[-min(len(losses), 20) :]
    record = {
        "config": asdict(cfg),
        "steps": step,
        "view_steps": view_steps,
        "seconds": round(time.perf_counter() - start, 2),
        "train_seconds": round(time.perf_counter() - train_start, 2),
        "stopped_by": "max_seconds" if timed_out else "max_steps",
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if tail else None,
    }
    if timed_out:
        logger.warning(
            "warm start stopped by max_seconds=%s after %d of %d steps: the model depends on "
            "machine speed",
            cfg.max_seconds,
            step,
            cfg.max_steps,
        )
    save_checkpoint_records(tmp, TINY_PROFILE, cfg.task)
    (tmp / _MARKER).write_text(json.dumps(record, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    logger.info("warm start: %d steps in %.1fs, loss %.3f", step, record["seconds"], tail[-1])
    return folder
