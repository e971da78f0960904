"""Fixtures shared by the training integrations: the tiny offline VLM and verl's agent loop.

No verl import at module level: tests that need verl skip themselves when it is missing.
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


@pytest.fixture()
def make_loop(tiny_processor: Any) -> Callable[..., Any]:
    """``make_loop(server, response_length=..., **loop_kwargs)``: a MedgymAgentLoop (in a loop)."""
    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
    from medgym.integrations.verl.testing import agent_loop_kwargs, minimal_trainer_config

    def make(server: Any, response_length: int = 4096, **loop_kw: Any) -> Any:
        common = agent_loop_kwargs(minimal_trainer_config(response_length), tiny_processor)
        return MedgymAgentLoop(server_manager=server, **common, **loop_kw)

    return make
