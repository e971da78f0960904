"""Configuration of an episode: budgets, penalties, precedence, prompt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, TypeVar

from medgym.errors import ConfigError, did_you_mean
from medgym.tools import ZOOM_TOOLS, ToolConfig

__all__ = ["Penalties", "SessionConfig", "check_keys", "dataclass_from", "tool_config_from"]

_D = TypeVar("_D")


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
        return dataclass_from(cls, value, "penalties", "penalty")

    def scaled(self, weight: float) -> Penalties:
        """Every penalty times ``weight`` (how a trainer's ``penalty_weight`` is applied)."""
        return Penalties(**{f.name: getattr(self, f.name) * weight for f in fields(self)})


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

    tools: tuple[str, ...] = ZOOM_TOOLS
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
    def from_dict(cls, values: Mapping[str, Any] | SessionConfig | None = None) -> SessionConfig:
        """Build from plain values: the one path for env kwargs, verl YAML, TRL and the server.

        Lists become tuples, dicts become :class:`Penalties` and :class:`ToolConfig`; ``None``
        values keep the default.

        Raises:
            ConfigError: An unknown key (named, with the near one), or a bad value.

        Example:
            >>> SessionConfig.from_dict({"tools": ["zoom_in"], "penalties": {"budget": 0.1}}).tools
            ('zoom_in',)
        """
        if values is None:
            return cls()
        if isinstance(values, SessionConfig):
            return values
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"a session config must be a dict of SessionConfig fields; got "
                f"{type(values).__name__} {values!r}"
            )
        check_keys(values, cls, "session config")
        kw = {str(k): v for k, v in values.items() if v is not None}
        if "tools" in kw:
            tools = kw["tools"]
            if isinstance(tools, str) or not all(isinstance(t, str) for t in tools):
                raise ConfigError(f"tools must be a list of tool names; got {tools!r}")
            kw["tools"] = tuple(tools)
        if "penalties" in kw:
            kw["penalties"] = Penalties.from_value(kw["penalties"])
        if "tool_config" in kw:
            kw["tool_config"] = tool_config_from(kw["tool_config"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values that :meth:`from_dict` turns back into this config."""
        out = asdict(self)
        out["tools"] = list(self.tools)
        return out

    def with_penalty_weight(self, weight: float) -> SessionConfig:
        """This config with every penalty scaled by ``weight`` (1.0 returns it unchanged)."""
        if weight == 1.0:
            return self
        if not (isinstance(weight, (int, float)) and 0 <= weight <= MAX_WEIGHT):
            raise ConfigError(
                f"penalty_weight must be a number in [0, {MAX_WEIGHT:g}]; got {weight!r}"
            )
        return replace(self, penalties=self.penalties.scaled(weight))


def tool_config_from(value: Mapping[str, Any] | ToolConfig | None) -> ToolConfig:
    """A :class:`ToolConfig` from a dict (unknown keys refused with the near one)."""
    return dataclass_from(ToolConfig, value, "tool_config", "tool_config")


def dataclass_from(cls: type[_D], value: object, name: str, key_label: str) -> _D:
    """``cls`` from a dict of its fields, an instance passed through, or ``cls()`` for None.

    Raises:
        ConfigError: ``value`` is not a dict (``name`` must be a dict...), or has a key ``cls``
            lacks (``unknown <key_label> key ...``, with the near one).
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a dict of {cls.__name__} fields; got {value!r}")
    check_keys(value, cls, key_label)
    return cls(**value)


def check_keys(values: Mapping[str, Any], cls: type, what: str) -> None:
    """Raise a :class:`ConfigError` naming the first key of ``values`` that ``cls`` lacks.

    Raises:
        ConfigError: ``unknown session config key `max_turn`; did you mean `max_turns`?``.
    """
    known = [f.name for f in fields(cls)]
    for key in values:
        if key not in known:
            raise ConfigError(
                f"unknown {what} key `{key}`{did_you_mean(str(key), known)}; known: "
                f"{', '.join(known)}"
            )
