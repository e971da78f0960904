"""Session fixtures: the tiny offline Qwen2.5-VL, built once per test session into tmp dirs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, small_model):
    pytest.importorskip("torch")
    from medgym.agents.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny"), small_model)


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from medgym.agents.tiny_vlm import load_tiny_vlm

    return load_tiny_vlm(tiny_dir)


@pytest.fixture(scope="session")
def warm_dir(tmp_path_factory, small_model):
    """A few seconds of warm start (the real one runs up to 2 minutes and is cached)."""
    pytest.importorskip("torch")
    from medgym.agents.tiny_vlm import WarmStartConfig, warm_start

    cfg = WarmStartConfig(num_samples=8, max_steps=40, batch_size=1, model=small_model)
    return warm_start(cfg, cache=tmp_path_factory.mktemp("cache"))
