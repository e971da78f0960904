"""The one dict-to-SessionConfig path: every adapter's keys are checked and named."""

from __future__ import annotations

import gymnasium as gym
import pytest

import medgym  # noqa: F401 - registers the envs
from medgym.envs import env_session_config
from medgym.envs.config import Penalties, SessionConfig
from medgym.errors import ConfigError
from medgym.tools import ToolConfig


def test_from_dict_builds_nested_parts_and_round_trips() -> None:
    cfg = SessionConfig.from_dict(
        {"tools": ["zoom_in"], "max_turns": 3, "penalties": {"budget": 0.2},
         "tool_config": {"clamp_penalty": 0.01}, "prompt": None}
    )  # fmt: skip
    assert cfg.tools == ("zoom_in",) and cfg.max_turns == 3
    assert cfg.penalties == Penalties(budget=0.2)
    assert cfg.tool_config == ToolConfig(clamp_penalty=0.01)
    assert cfg.prompt == "default"  # None keeps the default
    assert SessionConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"max_turn": 3}, "unknown session config key `max_turn`; did you mean `max_turns`"),
        ({"penalties": {"budjet": 0.1}}, "unknown penalty key `budjet`; did you mean `budget`"),
        ({"tool_config": {"clamp": 1}}, "unknown tool_config key `clamp`"),
        ({"tools": "zoom_in"}, "tools must be a list of tool names"),
        ({"penalties": [0.1]}, "penalties must be a dict"),
        ([("max_turns", 3)], "must be a dict of SessionConfig fields"),
    ],
    ids=["typo", "penalty-typo", "tool-config-typo", "tools-string", "penalties-list", "not-dict"],
)
def test_from_dict_refuses_unknown_or_bad_keys(values: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SessionConfig.from_dict(values)  # type: ignore[arg-type]


def test_env_kwargs_take_any_session_field_and_name_typos() -> None:
    env = gym.make("MedVQA-Zoom-v0", max_turns=2, last_turn_hint=False).unwrapped
    assert env.config.max_turns == 2 and env.config.last_turn_hint is False
    with pytest.raises(ConfigError, match="did you mean `max_images`"):
        gym.make("MedVQA-Zoom-v0", max_image=2)


def test_penalty_weight_scales_every_penalty() -> None:
    cfg = SessionConfig().with_penalty_weight(2.0)
    assert cfg.penalties == Penalties(format_error=0.2, tool_error=0.1, budget=0.1)
    assert SessionConfig().with_penalty_weight(1.0) == SessionConfig()
    with pytest.raises(ConfigError, match="penalty_weight"):
        SessionConfig().with_penalty_weight(-1.0)


def test_registered_direct_env_and_its_config_agree() -> None:
    env = gym.make("MedVQA-Direct-v0").unwrapped
    assert env.config == env_session_config("MedVQA-Direct-v0")
    assert env_session_config("MedVQA-Direct-v0").max_turns == 2
    with pytest.raises(ConfigError, match="did you mean `MedVQA-Zoom-v0`"):
        env_session_config("MedVQA-Zom-v0")
