"""Entropy-guided Visual Regrounding: when the policy is uncertain, it looks again."""

from __future__ import annotations

from medgym.agents.evr.budget import LeafBudget
from medgym.agents.evr.config import EVRConfig
from medgym.agents.evr.engine import EVREngine, generate_many
from medgym.agents.evr.signal import (
    RolloutSignal,
    Threshold,
    TurnSignal,
    decision_mask,
    decision_spans,
    token_values,
    turn_signal,
    windowed,
)
from medgym.agents.evr.stats import EVRStats

__all__ = [
    "EVRConfig",
    "EVREngine",
    "EVRStats",
    "LeafBudget",
    "RolloutSignal",
    "Threshold",
    "TurnSignal",
    "decision_mask",
    "decision_spans",
    "generate_many",
    "token_values",
    "turn_signal",
    "windowed",
]
