"""Policies (scripted now; model-backed later), episode runners and groups."""

from __future__ import annotations

from medgym.agents.policy import Generation, Policy, run_episode
from medgym.agents.runner import GroupRunner
from medgym.agents.scripted import (
    SCRIPTED_POLICIES,
    DirectPolicy,
    OraclePolicy,
    PixelReaderPolicy,
    RandomZoomPolicy,
    make_scripted_policy,
)

__all__ = [
    "SCRIPTED_POLICIES",
    "DirectPolicy",
    "Generation",
    "GroupRunner",
    "OraclePolicy",
    "PixelReaderPolicy",
    "Policy",
    "RandomZoomPolicy",
    "make_scripted_policy",
    "run_episode",
]
