"""Fixtures for the verl integration tests: tiny offline VLM, samples, parquet.

No verl import here: each test module skips itself when verl is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_vlm_path(tmp_path_factory: pytest.TempPathFactory, small_model: Any) -> Path:
    """A tiny offline Qwen2.5-VL saved to disk (model, tokenizer, processor)."""
    from medgym.agents.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"), small_model)


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


@pytest.fixture()
def make_loop(tiny_processor: Any) -> Callable[..., Any]:
    """``make_loop(server, response_length=..., **loop_kwargs)``: a MedgymAgentLoop (in a loop)."""
    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
    from medgym.integrations.verl.testing import agent_loop_kwargs, minimal_trainer_config

    def make(server: Any, response_length: int = 4096, **loop_kw: Any) -> Any:
        common = agent_loop_kwargs(minimal_trainer_config(response_length), tiny_processor)
        return MedgymAgentLoop(server_manager=server, **common, **loop_kw)

    return make


@pytest.fixture()
def verl_config() -> Callable[..., Any]:
    """``verl_config(response_length=4096, **extra)``: a trainer config (OmegaConf)."""
    from medgym.integrations.verl.testing import minimal_trainer_config

    return minimal_trainer_config


@pytest.fixture()
def row_kwargs() -> Callable[[Any], dict[str, Any]]:
    """``row_kwargs(sample)``: the ``agent_loop.run`` keyword arguments of a sample's row."""
    from medgym.integrations.verl.testing import row_kwargs

    return row_kwargs
