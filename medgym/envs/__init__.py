"""Gymnasium environments over the episode session, and their registration."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from medgym.core.parsing import ParsedTurn, parse_turn
from medgym.envs.config import Penalties, SessionConfig
from medgym.envs.env import MedVQAEnv
from medgym.envs.profiles import PROFILES, ModelProfile, get_profile, smart_resize
from medgym.envs.session import EpisodeSession, StepResult
from medgym.errors import ConfigError, did_you_mean
from medgym.tools import ALL_TOOLS, ZOOM_TOOLS

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
    "env_session_config",
    "get_profile",
    "parse_turn",
    "register_envs",
    "smart_resize",
]

ENV_IDS: dict[str, dict[str, Any]] = {
    "MedVQA-Zoom-v0": {"tools": list(ZOOM_TOOLS)},
    "MedVQA-Tools-v0": {"tools": list(ALL_TOOLS)},
    # One answer turn plus one retry after a format error (penalised): an env that always
    # truncates after one step fails Gymnasium's checker, and a typo should not end a baseline.
    "MedVQA-Direct-v0": {"tools": [], "max_turns": 2},
    # CT/MR volumes (synthetic3d by default): the first view is the middle slice; scroll pages
    # through the others, set_plane reformats to coronal or sagittal, overview tiles slices.
    "MedVQA-Volume-v0": {
        "dataset": "synthetic3d",
        "tools": ["scroll", "set_plane", "overview", "zoom_in", "reground", "measure"],
        "max_turns": 8,
        "max_images": 8,
    },
}
#: Env constructor options that are not session settings (left out of env_session_config).
_ENV_ONLY = ("dataset", "split", "profile", "max_pixels", "render_mode", "tool_server")


def env_session_config(env_id: str, **overrides: Any) -> SessionConfig:
    """The :class:`SessionConfig` a registered env id runs with, with ``overrides`` on top.

    Raises:
        ConfigError: An unknown env id or session key (each named, with the near one).
    """
    if env_id not in ENV_IDS:
        raise ConfigError(
            f"unknown env `{env_id}`{did_you_mean(env_id, ENV_IDS)}; known: {', '.join(ENV_IDS)}"
        )
    values = {k: v for k, v in ENV_IDS[env_id].items() if k not in _ENV_ONLY}
    return SessionConfig.from_dict({**values, **overrides})


def register_envs() -> None:
    """Register every medgym env id with Gymnasium (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="medgym.envs.env:MedVQAEnv", kwargs=kwargs)
