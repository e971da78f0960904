"""Learning with medgym's own engine: a lock-step GRPO loop and the learning benchmark.

Both need torch (``pip install 'medgym[hf]'``); importing this package does not.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GRPOConfig": "medgym.learning.grpo",
    "LockstepGRPO": "medgym.learning.grpo",
    "group_advantages": "medgym.learning.grpo",
    "LearningConfig": "medgym.learning.bench",
    "VARIANTS": "medgym.learning.bench",
    "run_learning": "medgym.learning.bench",
    "split_samples": "medgym.learning.bench",
    "strip_labels": "medgym.learning.bench",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medgym.learning' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
