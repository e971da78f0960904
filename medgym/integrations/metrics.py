"""A JSONL sink for training metrics, shared by the TRL and verl integrations."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["MetricsSink"]

logger = logging.getLogger(__name__)


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
