"""``warm_start``: a short CPU fine-tune that teaches the tiny model medgym's turn format.

A randomly initialised model never writes a tool call, and a group whose rollouts all score the
same has zero advantage. A minute or two of supervised fine-tuning on oracle episodes of the
``synthetic`` set (zoom on the evidence, then answer) makes the tiny model emit well-formed tool
calls and answers whose correctness varies between rollouts. The result is cached on disk under
``MEDGYM_CACHE_DIR`` (default ``~/.cache/medgym``), keyed by every setting that changes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medgym.agents.tiny_vlm.builder import TINY_PROFILE, TinyVLMConfig, build_tiny_vlm
from medgym.errors import ConfigError

__all__ = ["WarmStartConfig", "cache_dir", "collate", "sft_examples", "warm_start"]

logger = logging.getLogger(__name__)

_VERSION = 5
_MARKER = "warm_start.json"


@dataclass(frozen=True, kw_only=True)
class WarmStartConfig:
    """Settings of the warm-start fine-tune.

    Attributes:
        num_samples: ``synthetic`` samples whose oracle episodes form the training set.
        seed: Seed of the sample draw, the initialisation and the data order.
        max_seconds: Wall-clock cap of the whole warm start (build, data, optimisation; the
            optimiser stops when it is reached). Where it binds, the result depends on machine
            speed; for bit-reproducible runs, set ``max_steps`` low enough that it binds first.
        max_steps: Cap on optimiser steps.
        lr: AdamW learning rate.
        batch_size: Episodes per optimiser step (padded on the right).
        model: Sizes of the tiny model.
    """

    num_samples: int = 96
    seed: int = 0
    max_seconds: float = 110.0
    max_steps: int = 4000
    lr: float = 3e-3
    batch_size: int = 1
    model: TinyVLMConfig = field(default_factory=TinyVLMConfig)

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1; got {self.num_samples}")
        if not self.max_seconds > 0 or self.max_steps < 1:
            raise ConfigError(
                f"need max_seconds > 0 and max_steps >= 1; got {self.max_seconds}, {self.max_steps}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0; got {self.lr}")

    def key(self) -> str:
        """Short hash of every setting (the time cap included: it bounds the steps taken)."""
        d = asdict(self)
        d["version"] = _VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """``$MEDGYM_CACHE_DIR`` or ``~/.cache/medgym``."""
    return Path(os.environ.get("MEDGYM_CACHE_DIR") or Path.home() / ".cache" / "medgym")


def sft_examples(processor: Any, num_samples: int, seed: int) -> list[dict[str, Any]]:
    """Tokenised oracle episodes with labels on the assistant turns only.

    Every sample gives two episodes: with tools (zoom on the evidence, then answer) and without
    (answer at once, under the no-tool prompt), so the model learns both settings.

    Returns:
        One dict per episode: the processor's tensors plus ``labels`` (``-100`` outside the
        assistant replies; each reply's ``<|im_end|>`` is a target, so the model learns to stop).
    """
    import asyncio

    import torch

    from medgym.agents.policy import run_episode
    from medgym.agents.scripted import OraclePolicy
    from medgym.data import load
    from medgym.envs.config import SessionConfig
    from medgym.envs.session import EpisodeSession

    tok = processor.tokenizer
    start_id = tok.convert_tokens_to_ids("<|im_start|>")
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    header = tok.encode("assistant\n", add_special_tokens=False)
    out = []
    episodes = [
        EpisodeSession(sample, profile=TINY_PROFILE, config=cfg)
        for sample in load("synthetic", num_samples=num_samples, seed=seed)
        for cfg in (SessionConfig(), SessionConfig(tools=(), max_turns=1))
    ]
    for session in episodes:
        asyncio.run(run_episode(OraclePolicy(), session))
        messages = session.conversation("hf")
        images = [p["image"] for m in messages for p in m["content"] if p.get("type") == "image"]
        text = processor.apply_chat_template(messages, tokenize=False)
        enc = processor(text=[text], images=images or None, return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        labels = torch.full_like(enc["input_ids"], -100)
        for i, t in enumerate(ids):
            if t == start_id and ids[i + 1 : i + 1 + len(header)] == header:
                j = i + 1 + len(header)
                end = ids.index(end_id, j)
                labels[0, j : end + 1] = enc["input_ids"][0, j : end + 1]
        enc["labels"] = labels
        out.append(dict(enc))
    return out


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


def warm_start(
    config: WarmStartConfig | None = None, *, cache: str | Path | None = None, force: bool = False
) -> Path:
    """Build the tiny model and fine-tune it on oracle episodes, or reuse the cached result.

    Args:
        config: Settings; the cache key is derived from them.
        cache: Cache folder (default :func:`cache_dir`).
        force: Rebuild even when a cached result exists.

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
        return folder
    start = time.perf_counter()  # the time cap covers building and data too
    tmp = root / f".{folder.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_vlm(tmp, cfg.model)
    model, processor = load_tiny_vlm(tmp)
    examples = sft_examples(processor, cfg.num_samples, cfg.seed)
    torch.manual_seed(cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(cfg.seed)
    train_start, step, losses = time.perf_counter(), 0, []
    pad_id = processor.tokenizer.pad_token_id
    while step < cfg.max_steps and time.perf_counter() - start < cfg.max_seconds:
        perm = torch.randperm(len(examples), generator=order).tolist()
        for i in range(0, len(perm), cfg.batch_size):
            batch = collate([examples[k] for k in perm[i : i + cfg.batch_size]], pad_id)
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= cfg.max_steps or time.perf_counter() - start >= cfg.max_seconds:
                break
    model.eval()
    model.save_pretrained(tmp)
    tail = losses[-min(len(losses), 20) :]
    record = {
        "config": asdict(cfg),
        "steps": step,
        "seconds": round(time.perf_counter() - start, 2),
        "train_seconds": round(time.perf_counter() - train_start, 2),
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if tail else None,
    }
    (tmp / _MARKER).write_text(json.dumps(record, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    logger.info("warm start: %d steps in %.1fs, loss %.3f", step, record["seconds"], tail[-1])
    return folder
