"""``MedVQAEnv``: a thin Gymnasium wrapper over :class:`~medgym.envs.session.EpisodeSession`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import DEFAULT_PROFILE, get_profile
from medgym.envs.session import EpisodeSession
from medgym.envs.spaces import CHARSET, make_observation_space, sanitize_text
from medgym.errors import ConfigError, did_you_mean
from medgym.tools import ZOOM_TOOLS

__all__ = ["MedVQAEnv"]

Obs = dict[str, Any]


def _load_samples(dataset: str | dict[str, Any], split: str | None) -> list[Sample]:
    from medgym.data import load

    if isinstance(dataset, str):
        spec: dict[str, Any] = {"name": dataset}
    elif isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        spec = dict(dataset)
    else:
        raise ConfigError(f"dataset must be a name or a dict with a 'name' key; got {dataset!r}")
    name = spec.pop("name")
    if split is not None:
        spec.setdefault("split", split)
    return load(name, **spec)


class MedVQAEnv(gym.Env[Obs, str]):
    """Multi-turn medical VQA with image tools.

    Each step takes the policy's whole turn as text and returns the environment's reply: a text
    message with one ``<image>`` placeholder per new image, and those images.

    Args:
        dataset: Dataset name or ``{"name": ..., **load kwargs}`` (see :func:`medgym.data.load`).
        split: Dataset split.
        samples: In-memory samples (instead of ``dataset``); not JSON, so constructor-only.
        profile: Model profile name (``qwen2.5-vl``, ``qwen3-vl``, ``qwen2-vl``, ``generic``).
        max_pixels: Pixel budget per view (overrides the profile's).
        tools: Tool names the model may use; ``[]`` gives a one-turn direct-answer env.
        max_turns: Turn budget.
        max_images: Image budget (new views per episode).
        max_calls_per_turn: Tool calls run per turn.
        precedence: ``answer`` or ``tools`` when a turn has both.
        penalties: ``{"format_error", "tool_error", "budget", "no_answer"}`` overrides.
        format_weight: Weight of the format part of the final reward.
        prompt: Prompt template name.
        render_mode: ``None`` or ``"rgb_array"``.
        tool_server: ``http://host:port`` of a medgym tool server to run tools and render views
            on (same observations as in-process; token from ``MEDGYM_TOKEN``). ``None``: local.
        **session_options: Any other :class:`SessionConfig` field (``tool_config``,
            ``last_turn_hint``); an unknown name is a :class:`ConfigError` naming the near one.

    Example:
        >>> import gymnasium as gym, medgym
        >>> env = gym.make("MedVQA-Zoom-v0", max_turns=4)
        >>> obs, info = env.reset(seed=0)
        >>> obs["text"].count("<image>") == len(obs["images"])
        True
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}  # noqa: RUF012 - Gymnasium API

    def __init__(
        self,
        dataset: str | dict[str, Any] = "synthetic",
        split: str | None = "test",
        *,
        samples: Sequence[Sample] | None = None,
        profile: str = DEFAULT_PROFILE,
        max_pixels: int | None = None,
        tools: Sequence[str] | None = ZOOM_TOOLS,
        max_turns: int = 6,
        max_images: int = 8,
        max_calls_per_turn: int = 3,
        precedence: str = "answer",
        penalties: dict[str, float] | None = None,
        format_weight: float = 0.1,
        prompt: str = "default",
        render_mode: str | None = None,
        tool_server: str | None = None,
        **session_options: Any,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        self.samples = list(samples) if samples is not None else _load_samples(dataset, split)
        if not self.samples:
            raise ConfigError(f"dataset {dataset!r} (split {split!r}) has no samples")
        self._by_id = {s.id: i for i, s in enumerate(self.samples)}
        overrides = {"max_pixels": max_pixels} if max_pixels is not None else {}
        self.profile = get_profile(profile, **overrides)
        self.config = SessionConfig.from_dict(
            {
                "tools": tuple(tools or ()), "max_turns": max_turns, "max_images": max_images,
                "max_calls_per_turn": max_calls_per_turn, "precedence": precedence,
                "penalties": penalties, "format_weight": format_weight, "prompt": prompt,
                **session_options,
            }
        )  # fmt: skip
        from medgym.tools import TOOLS

        self.tools = TOOLS.subset(self.config.tools)  # fail fast on an unknown tool name
        self.render_mode = render_mode
        self.observation_space = make_observation_space()
        self.action_space = spaces.Text(max_length=16_384, min_length=0, charset=CHARSET)
        self.session: EpisodeSession | None = None
        self.tool_server = tool_server
        self._client: Any = None
        self._backend: Any = None
        if tool_server is not None:
            from medgym.serving.client import ToolServerClient
            from medgym.serving.remote import ServerBackend
            from medgym.settings import get_settings

            token = get_settings().token
            self._client = ToolServerClient(
                tool_server, token=token.get_secret_value() if token is not None else None
            )
            self._backend = ServerBackend(self._client, self.profile)

    # ------------------------------------------------------------------ API
    def _pick(self, options: dict[str, Any] | None) -> Sample:
        options = options or {}
        if not isinstance(options, dict):
            raise ConfigError(f"reset options must be a dict; got {type(options).__name__}")
        unknown = set(options) - {"sample_id", "index"}
        if unknown:
            raise ConfigError(
                f"unknown reset option(s) {sorted(map(str, unknown))}"
                f"{did_you_mean(str(next(iter(unknown))), ('sample_id', 'index'))}; "
                "known: sample_id, index"
            )
        if "sample_id" in options:
            sid = options["sample_id"]
            if not isinstance(sid, str):
                raise ConfigError(f"sample_id must be a string; got {type(sid).__name__} {sid!r}")
            if sid not in self._by_id:
                raise ConfigError(f"no sample with id {sid!r} in this env's dataset")
            return self.samples[self._by_id[sid]]
        if "index" in options:
            idx = options["index"]
            if not isinstance(idx, int) or not 0 <= idx < len(self.samples):
                raise ConfigError(f"index must be in 0..{len(self.samples) - 1}; got {idx!r}")
            return self.samples[idx]
        return self.samples[int(self.np_random.integers(len(self.samples)))]

    def _obs(self, text: str, views: Sequence[int]) -> Obs:
        if self.session is None:
            raise ConfigError("call reset() before step()")
        images = tuple(np.array(self.session.pixels(i)) for i in views)  # fresh arrays
        return {"text": sanitize_text(text), "images": images}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode: ``options={"sample_id": ...}`` or ``{"index": i}`` picks the sample."""
        super().reset(seed=seed)
        sample = self._pick(options)
        self.session = EpisodeSession(
            sample, config=self.config, profile=self.profile, tools=self.tools,
            backend=self._backend,
        )  # fmt: skip
        s = self.session
        first = list(range(len(s.views)))
        info = {
            "sample_id": sample.id,
            "system_prompt": s.system_prompt,
            "tools": s.tool_schemas,
            "views": [v.model_dump() for v in s.views],
            "metrics": dict(s.metrics),
        }
        return self._obs(s.prompt, first), info

    def step(self, action: str) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Apply the policy's turn; see :meth:`EpisodeSession.apply_turn`."""
        if self.session is None:
            raise ConfigError("call reset() before step()")
        r = self.session.apply_turn(action)
        info = dict(r.info)
        info["views"] = [self.session.views[i].model_dump() for i in r.new_views]
        info["sample_id"] = self.session.sample.id
        if r.terminated or r.truncated:
            info["answer"] = self.session.answer
        return self._obs(r.observation, r.new_views), r.reward, r.terminated, r.truncated, info

    def close(self) -> None:
        """Release the tool server connection pool, if any."""
        if self._client is not None:
            self._client.close()
        super().close()

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The first view with every later view's region drawn on it (newest in red)."""
        if self.render_mode != "rgb_array" or self.session is None:
            return None
        s = self.session
        canvas = np.array(s.pixels(0))
        base = s.views[0]
        later = [v for v in s.views[1:] if v.image_index == base.image_index]
        for k, v in enumerate(later):
            x1, y1, x2, y2 = (round(c) for c in base.original_to_view(v.bbox_px))
            colour = (255, 0, 0) if k == len(later) - 1 else (0, 200, 255)
            cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        return canvas
