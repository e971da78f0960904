"""Fixtures for the verl integration tests: tiny offline VLM, samples, parquet.

No verl import here: each test module skips itself when verl is missing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
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


def _trainer_config(response_length: int = 4096, **extra: Any) -> Any:
    """The parts of verl's trainer config an agent loop and the TQ worker read."""
    from omegaconf import OmegaConf

    multi_turn = {
        "max_user_turns": 8,
        "max_assistant_turns": 8,
        "max_parallel_calls": 3,
        "max_tool_response_length": 512,
        "tool_response_truncate_side": "middle",
        "format": "hermes",
    }
    rollout = {
        "multi_turn": multi_turn,
        "prompt_length": 4096,
        "response_length": response_length,
        "full_determinism": False,
        "calculate_log_probs": True,
        "n": 4,
        "val_kwargs": {"n": 2},
    }
    return OmegaConf.merge(
        OmegaConf.create({"actor_rollout_ref": {"rollout": rollout}, "data": {}}),
        OmegaConf.create(extra),
    )


def _run_kwargs(sample: Any) -> dict[str, Any]:
    """What verl's worker passes to ``agent_loop.run`` for a parquet row of ``sample``."""
    from PIL import Image

    from medgym.integrations.verl.prepare import sample_to_row

    row = sample_to_row(sample, 0, data_source="synthetic")
    image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
    user = row["prompt"][1]["content"].replace("<image>", "")
    raw_prompt = [
        row["prompt"][0],
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": user}],
        },
    ]
    return {"raw_prompt": raw_prompt, "extra_info": row["extra_info"], "tools_kwargs": {}}


@pytest.fixture()
def make_loop(tiny_processor: Any) -> Callable[..., Any]:
    """``make_loop(server, response_length=..., **loop_kwargs)``: a MedgymAgentLoop (in a loop)."""
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap

    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
    from medgym.integrations.verl.dataset import MedgymRLHFDataset

    def make(server: Any, response_length: int = 4096, **loop_kw: Any) -> Any:
        cfg = _trainer_config(response_length)
        return MedgymAgentLoop(
            trainer_config=DictConfigWrap(cfg),
            server_manager=server,
            tokenizer=tiny_processor.tokenizer,
            processor=tiny_processor,
            dataset_cls=MedgymRLHFDataset,
            data_config=DictConfigWrap(cfg.data),
            hf_model_type="qwen2_5_vl",
            **loop_kw,
        )

    return make


@pytest.fixture()
def verl_config() -> Callable[..., Any]:
    """``verl_config(response_length=4096, **extra)``: a trainer config (OmegaConf)."""
    return _trainer_config


@pytest.fixture()
def row_kwargs() -> Callable[[Any], dict[str, Any]]:
    """``row_kwargs(sample)``: the ``agent_loop.run`` keyword arguments of a sample's row."""
    return _run_kwargs
