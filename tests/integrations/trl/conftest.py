"""Session fixtures: a short warm start of the tiny model and one 2-step GRPO run on CPU."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="session")
def trl_warm_dir(tmp_path_factory):
    """800 warm-start steps (about 20 s): enough for the tiny model to write tool calls and answers."""
    pytest.importorskip("trl")
    from medgym.agents.tiny_vlm import TinyVLMConfig, WarmStartConfig, warm_start

    cfg = WarmStartConfig(
        num_samples=8, max_steps=800, max_seconds=60, model=TinyVLMConfig(corpus_samples=16)
    )
    return warm_start(cfg, cache=tmp_path_factory.mktemp("trl-cache"))
