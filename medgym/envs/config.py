"""Configuration of an episode: budgets, penalties, precedence, prompt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from medgym.errors import ConfigError
from medgym.tools.base import ToolConfig

__all__ = ["Penalties", "SessionConfig"]


MAX_WEIGHT = 100.0
"""Largest penalty or reward weight accepted (inf or 1e308 would make the reward non-finite)."""


@dataclass(frozen=True, kw_only=True)
class Penalties:
    """Penalties (subtracted from the reward) for model errors; all >= 0.

    Attributes:
        format_error: A turn with neither a tool call nor an answer, or an unparseable call.
        tool_error: A tool call the tool refused (bad box, unknown tool, bad arguments).
        budget: A call past the image budget or the per-turn call limit.
        no_answer: The turn budget ran out without an answer.
    """

    format_error: float = 0.1
    tool_error: float = 0.05
    budget: float = 0.05
    no_answer: float = 0.0

    def __post_init__(self) -> None:
        for name in ("format_error", "tool_error", "budget", "no_answer"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= MAX_WEIGHT):
                raise ConfigError(
                    f"penalty `{name}` must be a number in [0, {MAX_WEIGHT:g}]; got {v!r}"
                )

    @classmethod
    def from_value(cls, value: Penalties | dict[str, float] | None) -> Penalties:
        """Build from a dict (JSON-friendly env kwargs) or pass through."""
        if value is None:
            return cls()
        if isinstance(value, Penalties):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"penalties must be a dict of name -> float; got {value!r}")
        known = {"format_error", "tool_error", "budget", "no_answer"}
        unknown = set(value) - known
        if unknown:
            raise ConfigError(f"unknown penalties {sorted(unknown)}; known: {sorted(known)}")
        return cls(**value)


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    """How an episode runs.

    Attributes:
        tools: Names of the tools the model may call (empty: answer directly).
        max_turns: Model turns before the episode is truncated.
        max_images: New images (views after the first) an episode may show.
        max_calls_per_turn: Tool calls run per turn; more are refused with a penalty.
        precedence: When a turn has both an answer and tool calls: ``answer`` ends the episode
            (calls ignored), ``tools`` runs the calls and ignores the answer.
        format_weight: Weight of the format part in the total reward.
        penalties: Penalties for model errors.
        tool_config: Knobs shared by the image tools.
        prompt: Name of the prompt template (see :mod:`medgym.envs.prompts`).
        last_turn_hint: Tell the model when its next turn is its last.
    """

    tools: tuple[str, ...] = ("zoom_in", "crop", "reground")
    max_turns: int = 6
    max_images: int = 8
    max_calls_per_turn: int = 3
    precedence: Literal["answer", "tools"] = "answer"
    format_weight: float = 0.1
    penalties: Penalties = field(default_factory=Penalties)
    tool_config: ToolConfig = field(default_factory=ToolConfig)
    prompt: str = "default"
    last_turn_hint: bool = True

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_calls_per_turn"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.max_images < 0:
            raise ConfigError(f"max_images must be >= 0; got {self.max_images}")
        if not isinstance(self.prompt, str):
            raise ConfigError(
                f"prompt must be a prompt template name (a string); got "
                f"{type(self.prompt).__name__} {self.prompt!r}"
            )
        if self.precedence not in ("answer", "tools"):
            raise ConfigError(f"precedence must be 'answer' or 'tools'; got {self.precedence!r}")
        if not (
            isinstance(self.format_weight, (int, float)) and 0 <= self.format_weight <= MAX_WEIGHT
        ):
            raise ConfigError(
                f"format_weight must be a number in [0, {MAX_WEIGHT:g}]; got {self.format_weight!r}"
            )

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SessionConfig:
        """Build from JSON-friendly values (lists for tuples, dicts for penalties)."""
        if "tools" in kwargs and kwargs["tools"] is not None:
            kwargs["tools"] = tuple(kwargs["tools"])
        if "penalties" in kwargs:
            kwargs["penalties"] = Penalties.from_value(kwargs["penalties"])
        if isinstance(kwargs.get("tool_config"), dict):
            kwargs["tool_config"] = ToolConfig(**kwargs["tool_config"])
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
