"""Gymnasium environments over the episode session, and their registration."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from medgym.envs.config import Penalties, SessionConfig
from medgym.envs.env import MedVQAEnv
from medgym.envs.parsing import ParsedTurn, parse_turn
from medgym.envs.profiles import PROFILES, ModelProfile, get_profile, smart_resize
from medgym.envs.session import EpisodeSession, StepResult

__all__ = [
    "ENV_IDS",
    "PROFILES",
    "EpisodeSession",
    "MedVQAEnv",
    "ModelProfile",
    "ParsedTurn",
    "Penalties",
    "SessionConfig",
    "StepResult",
    "get_profile",
    "parse_turn",
    "register_envs",
    "smart_resize",
]

ENV_IDS: dict[str, dict[str, Any]] = {
    "MedVQA-Zoom-v0": {"tools": ["zoom_in", "crop", "reground"]},
    "MedVQA-Tools-v0": {"tools": ["zoom_in", "crop", "reground", "window", "rotate", "flip"]},
    # One answer turn plus one retry after a format error (penalised): an env that always
    # truncates after one step fails Gymnasium's checker, and a typo should not end a baseline.
    "MedVQA-Direct-v0": {"tools": [], "max_turns": 2},
}


def register_envs() -> None:
    """Register every medgym env id with Gymnasium (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="medgym.envs.env:MedVQAEnv", kwargs=kwargs)
