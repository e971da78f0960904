from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest


class TableEmbedder:
    """Fixed unit vectors per text (hand-computable similarities); unknown texts -> last axis."""

    name = "table"

    def __init__(self, table: dict[str, Sequence[float]], dim: int = 4) -> None:
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            v = self.table.get(t)
            if v is None:
                v = np.eye(self.dim, dtype=np.float32)[-1]
            out[i] = v / np.linalg.norm(v)
        return out


@pytest.fixture
def table_embedder() -> TableEmbedder:
    # "pleural effusion" and "fluid in pleural space" are close (cos 0.96); "pneumothorax" is far.
    return TableEmbedder(
        {
            "pleural effusion": [1.0, 0.0, 0.0, 0.0],
            "fluid in pleural space": [0.96, 0.28, 0.0, 0.0],
            "effusion": [0.9, 0.0, 0.436, 0.0],
            "pneumothorax": [0.0, 1.0, 0.0, 0.0],
        }
    )
