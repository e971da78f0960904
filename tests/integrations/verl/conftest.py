"""Fixtures for the verl integration tests: tiny offline VLM, samples, parquet.

No verl import here: each test module skips itself when verl is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_vlm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny offline Qwen2.5-VL saved to disk (model, tokenizer, processor)."""
    from medgym.agents.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


@pytest.fixture(scope="session")
def tiny_processor(tiny_vlm_path: Path) -> Any:
    """The tiny offline Qwen2.5-VL processor (tokenizer inside)."""
    from transformers import AutoProcessor

    from medgym.agents.tiny_vlm.processor import register_processor

    register_processor()
    return AutoProcessor.from_pretrained(tiny_vlm_path)


@pytest.fixture(scope="session")
def samples() -> list[Any]:
    """Four labelled synthetic samples."""
    from medgym.data import load

    return load("synthetic", num_samples=4)


@pytest.fixture(scope="session")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory, samples: list[Any]) -> Path:
    """train/val parquet written by the prepare module."""
    from medgym.integrations.verl.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("verl_data")
    prepare_dataset(samples, out, data_source="synthetic", val_fraction=0.25)
    return out
