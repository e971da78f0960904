"""A tiny, randomly initialised Qwen2.5-VL built offline, and its warm start (needs torch)."""

from __future__ import annotations

from medgym.agents.tiny_vlm.builder import (
    TINY3D_SESSION,
    TINY3D_TASK,
    TINY_PROFILE,
    TINY_SESSION,
    TINY_TASK,
    TINY_TASKS,
    TinyTask,
    TinyVLMConfig,
    build_tiny_vlm,
    get_tiny_task,
    load_tiny_vlm,
)
from medgym.agents.tiny_vlm.warm_start import WarmStartConfig, cache_dir, warm_start

__all__ = [
    "TINY3D_SESSION",
    "TINY3D_TASK",
    "TINY_PROFILE",
    "TINY_SESSION",
    "TINY_TASK",
    "TINY_TASKS",
    "TinyTask",
    "TinyVLMConfig",
    "WarmStartConfig",
    "build_tiny_vlm",
    "cache_dir",
    "get_tiny_task",
    "load_tiny_vlm",
    "warm_start",
]
