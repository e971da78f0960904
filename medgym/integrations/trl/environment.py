"""TRL ``environment_factory`` over :class:`~medgym.envs.session.EpisodeSession`.

TRL creates environment instances once, calls ``reset(**row)`` before each rollout and exposes
every public method of the environment's class as a tool, with the schema transformers derives
from the method's signature and docstring. The methods are generated from the tool registry
(:func:`tool_env_class`): the same names, descriptions, parameters and defaults the gym env's
system prompt and verl's tool YAML show, for any of the six tools.

Each tool call the model makes becomes one session turn (the call written back as a
``<tool_call>`` block and run through :meth:`EpisodeSession.apply_turn`), so parsing, crops,
budgets and penalties are the gym env's. The tool reply carries the new view as an image part
(:func:`~medgym.envs.conversation.reply_parts`, the gym conversation's splitter), which TRL puts
into the next turn. The final assistant text is applied by :func:`finish_episode` when the
rewards are computed.

Divergence from the gym env, by construction of TRL's loop: several calls in one assistant
message are run as consecutive turns (one turn each), and an assistant message with neither an
answer nor a tool call ends the rollout (the gym env would let the model try again).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from medgym.core.images import MedImage
from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.conversation import hf_parts, reply_parts
from medgym.envs.profiles import DEFAULT_PROFILE, ModelProfile, get_profile
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError
from medgym.tools import TOOLS, Tool, ToolRegistry

__all__ = [
    "MedGymToolEnv",
    "finish_episode",
    "make_environment_factory",
    "tool_env_class",
    "tool_method",
    "tool_reply_parts",
]

logger = logging.getLogger(__name__)

_JSON_TYPES: dict[str, Any] = {"integer": int, "number": float, "string": str, "boolean": bool}


class MedGymToolEnv:
    """One rollout's episode, seen by TRL as an environment; :func:`tool_env_class` adds tools.

    Args:
        samples: Samples by id (the dataset rows carry ``sample_id``).
        config: Session config (budgets, penalties, tools).
        profile: Model profile.
        images: Shared cache of decoded sample images by sample id.
    """

    def __init__(
        self,
        samples: Mapping[str, Sample],
        *,
        config: SessionConfig,
        profile: ModelProfile,
        images: dict[str, Sequence[MedImage]] | None = None,
    ) -> None:
        self._samples = samples
        self._config = config
        self._profile = profile
        self._images = images if images is not None else {}
        self.session: EpisodeSession | None = None

    def reset(self, **row: Any) -> None:
        """Start a new episode for the row's ``sample_id`` (the prompt already holds the question).

        Raises:
            ConfigError: If the row has no known ``sample_id``.
        """
        sid = row.get("sample_id")
        if not isinstance(sid, str) or sid not in self._samples:
            raise ConfigError(
                f"dataset row needs a `sample_id` among the {len(self._samples)} samples the "
                f"environment was built with; got {sid!r}"
            )
        sample = self._samples[sid]
        imgs = self._images.get(sid)
        self.session = EpisodeSession(
            sample, config=self._config, profile=self._profile, images=imgs
        )
        self._images.setdefault(sid, self.session.images)
        return None

    # ------------------------------------------------------------------ internals
    def _call(self, name: str, arguments: dict[str, Any]) -> list[dict]:
        session = self._require_session()
        if session.done:
            return [{"type": "text", "text": "the episode is over; no more tool calls"}]
        text = f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"
        step = session.apply_turn(text)
        if session.done:
            return [{"type": "text", "text": "turn budget spent; the episode is over"}]
        return tool_reply_parts(session, step.observation, step.new_views)

    def _require_session(self) -> EpisodeSession:
        if self.session is None:
            raise ConfigError("reset() must be called before the environment is used")
        return self.session


def tool_reply_parts(session: EpisodeSession, text: str, views: Sequence[int]) -> list[dict]:
    """The environment's reply as content parts: text, with one PIL image per new view."""
    parts = reply_parts(text, views, session.profile.image_placeholder)
    return hf_parts(parts, session.pixels)


def _annotation(prop: Mapping[str, Any]) -> Any:
    """A Python type for one flattened JSON-schema property (what transformers reads back)."""
    if "enum" in prop:
        return Literal[tuple(prop["enum"])]  # type: ignore[misc]
    if prop.get("type") == "array":
        item: Any = _JSON_TYPES.get(prop.get("items", {}).get("type", "number"), float)
        return list[item]  # type: ignore[valid-type]
    return _JSON_TYPES.get(str(prop.get("type")), str)


def tool_method(tool: Tool[Any]) -> Callable[..., list[dict]]:
    """A method running ``tool`` through the session, with the registry's contract.

    Its name, parameters (types, defaults, required ones) and docstring (description and one
    ``Args:`` line per parameter) come from the tool's OpenAI schema and params model, so the
    schema TRL derives from it (``transformers.utils.get_json_schema``) says what the registry
    says. Only the arguments the model gave are passed on, as in a ``<tool_call>``.
    """
    fn = tool.to_openai_schema()["function"]
    props: dict[str, Any] = fn["parameters"]["properties"]
    required = set(fn["parameters"].get("required", []))
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for name, prop in props.items():
        ann = _annotation(prop)
        if name in required:
            default: Any = inspect.Parameter.empty
        else:
            default = tool.params.model_fields[name].default
            if default is None:
                ann = ann | None
        annotations[name] = ann
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=ann
            )
        )
    annotations["return"] = list
    signature = inspect.Signature(params, return_annotation=list)

    def method(self: MedGymToolEnv, *args: Any, **kwargs: Any) -> list[dict]:
        bound = signature.bind(self, *args, **kwargs)
        arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
        return self._call(tool.name, arguments)

    lines = [str(fn["description"]), "", "Args:"]
    lines += [f"    {name}: {' '.join(str(p['description']).split())}" for name, p in props.items()]
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = "\n".join(lines)
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    return method


def tool_env_class(tools: Sequence[str], registry: ToolRegistry = TOOLS) -> type[MedGymToolEnv]:
    """A :class:`MedGymToolEnv` subclass with one generated method per tool (TRL's tools).

    Raises:
        ConfigError: An unknown tool name (with the near one), or none at all.
    """
    if not tools:
        raise ConfigError("the TRL environment needs at least one tool; got config.tools=()")
    chosen = registry.subset(tools)
    methods = {name: tool_method(chosen[name]) for name in chosen}
    return type("MedGymToolEnv", (MedGymToolEnv,), {**methods, "__module__": __name__})


def finish_episode(env: MedGymToolEnv, completion: object) -> EpisodeSession:
    """Apply the rollout's final assistant text (its answer) to the session, once.

    Args:
        env: The rollout's environment.
        completion: TRL's completion: a list of messages, or a string.

    Returns:
        The session (done when the text held an answer).
    """
    session = env._require_session()
    if session.done:
        return session
    if isinstance(completion, str):
        text, has_calls = completion, False
    else:
        last = completion[-1] if isinstance(completion, list) and completion else {}
        if not isinstance(last, Mapping) or last.get("role") != "assistant":
            return session  # ended on a tool reply (length or iteration cap): no final turn
        content = last.get("content") or ""
        text = (
            content
            if isinstance(content, str)
            else "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        )
        has_calls = bool(last.get("tool_calls"))
    if has_calls:
        return session  # its calls were not run (TRL's iteration cap): leave the turn unplayed
    session.apply_turn(text)
    return session


def make_environment_factory(
    samples: Sequence[Sample],
    *,
    config: SessionConfig | None = None,
    profile: str | ModelProfile = DEFAULT_PROFILE,
) -> Callable[[], MedGymToolEnv]:
    """A zero-argument factory for ``GRPOTrainer(environment_factory=...)``.

    Its environments expose ``config.tools`` (any registry tool) as methods.

    Raises:
        ConfigError: If the config names no tool or an unknown one, or sample ids are not
            unique.
    """
    cfg = config or SessionConfig()
    env_cls = tool_env_class(cfg.tools)
    by_id = {s.id: s for s in samples}
    if len(by_id) != len(samples):
        raise ConfigError(f"sample ids must be unique; {len(samples) - len(by_id)} duplicate(s)")
    prof = get_profile(profile)
    images: dict[str, Sequence[MedImage]] = {}

    def factory() -> MedGymToolEnv:
        return env_cls(by_id, config=cfg, profile=prof, images=images)

    return factory
