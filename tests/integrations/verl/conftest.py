"""Fixtures for the verl integration tests: tiny offline VLM, samples, parquet.

No verl import here: each test module skips itself when verl is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


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
def verl_config() -> Callable[..., Any]:
    """``verl_config(response_length=4096, **extra)``: a trainer config (OmegaConf)."""
    from medgym.integrations.verl.testing import minimal_trainer_config

    return minimal_trainer_config


@pytest.fixture()
def row_kwargs() -> Callable[[Any], dict[str, Any]]:
    """``row_kwargs(sample)``: the ``agent_loop.run`` keyword arguments of a sample's row."""
    from medgym.integrations.verl.testing import row_kwargs

    return row_kwargs
