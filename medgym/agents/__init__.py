"""Policies (scripted, HF, OpenAI-compatible, forced), episode runners, groups and EVR.

Torch-backed names (:class:`HFPolicy`, :class:`ForcedPolicy`, the tiny VLM) are imported on
first use, so ``import medgym`` never needs torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from medgym.agents.entropy import TokenGeneration, truncated_entropy
from medgym.agents.evr import EVRConfig, EVREngine, EVRStats
from medgym.agents.openai_policy import EndpointError, OpenAIPolicy, OpenAIPolicyConfig
from medgym.agents.policy import Generation, Policy, run_episode
from medgym.agents.runner import GroupRunner
from medgym.agents.scripted import (
    SCRIPTED_POLICIES,
    DirectPolicy,
    OraclePolicy,
    PixelReaderPolicy,
    RandomZoomPolicy,
    TeacherPolicy,
    make_scripted_policy,
)

_LAZY = {
    "HFPolicy": "medgym.agents.hf_policy",
    "SamplingConfig": "medgym.agents.hf_policy",
    "ForcedPolicy": "medgym.agents.forced",
    "TINY_PROFILE": "medgym.agents.tiny_vlm",
    "TinyVLMConfig": "medgym.agents.tiny_vlm",
    "WarmStartConfig": "medgym.agents.tiny_vlm",
    "build_tiny_vlm": "medgym.agents.tiny_vlm",
    "load_tiny_vlm": "medgym.agents.tiny_vlm",
    "warm_start": "medgym.agents.tiny_vlm",
}

__all__ = [
    "SCRIPTED_POLICIES",
    "TINY_PROFILE",
    "DirectPolicy",
    "EVRConfig",
    "EVREngine",
    "EVRStats",
    "EndpointError",
    "ForcedPolicy",
    "Generation",
    "GroupRunner",
    "HFPolicy",
    "OpenAIPolicy",
    "OpenAIPolicyConfig",
    "OraclePolicy",
    "PixelReaderPolicy",
    "Policy",
    "RandomZoomPolicy",
    "SamplingConfig",
    "TeacherPolicy",
    "TinyVLMConfig",
    "TokenGeneration",
    "WarmStartConfig",
    "build_tiny_vlm",
    "load_tiny_vlm",
    "make_scripted_policy",
    "run_episode",
    "truncated_entropy",
    "warm_start",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medgym.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
