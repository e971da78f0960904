"""Per-step metrics of TRL runs: the JSONL sink (TensorBoard goes through TRL's ``report_to``)."""

from __future__ import annotations

import importlib.util

from medgym.integrations.metrics import MetricsSink

__all__ = ["MetricsSink", "tensorboard_available"]


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package is importable (TRL's ``report_to`` needs it)."""
    return importlib.util.find_spec("tensorboard") is not None
