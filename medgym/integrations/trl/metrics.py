"""A JSONL sink for per-step training metrics (TensorBoard goes through TRL's ``report_to``)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["MetricsSink", "tensorboard_available"]

logger = logging.getLogger(__name__)


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package is importable (TRL's ``report_to`` needs it)."""
    return importlib.util.find_spec("tensorboard") is not None


class MetricsSink:
    """Appends one JSON object per record to ``path`` (created with its folder).

    Args:
        path: The JSONL file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float))
            f.write("\n")

    def read(self) -> list[dict[str, Any]]:
        """All records written so far."""
        if not self.path.is_file():
            return []
        with self.path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
