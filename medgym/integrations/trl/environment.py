"""TRL ``environment_factory`` over :class:`~medgym.envs.session.EpisodeSession`.

TRL creates environment instances once, calls ``reset(**row)`` before each rollout and exposes
every public method as a tool. Each tool call the model makes becomes one session turn (the call
written back as a ``<tool_call>`` block and run through :meth:`EpisodeSession.apply_turn`), so
parsing, crops, budgets and penalties are the gym env's. The tool reply carries the new view as
an image part, which TRL puts into the next turn. The final assistant text is applied by
:func:`finish_episode` when the rewards are computed.

Divergence from the gym env, by construction of TRL's loop: several calls in one assistant
message are run as consecutive turns (one turn each), and an assistant message with neither an
answer nor a tool call ends the rollout (the gym env would let the model try again).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from medgym.core.images import MedImage
from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import ModelProfile, get_profile
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError

__all__ = ["SUPPORTED_TOOLS", "MedGymToolEnv", "finish_episode", "make_environment_factory"]

logger = logging.getLogger(__name__)

#: Tools the TRL environment exposes as methods (TRL derives tool schemas from methods).
SUPPORTED_TOOLS = ("zoom_in", "crop", "reground")


class MedGymToolEnv:
    """One rollout's episode, seen by TRL as an environment with image tools.

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

    # ------------------------------------------------------------------ tools (public = exposed)
    def zoom_in(self, bbox_2d: list[float], image_index: int = 0, label: str = "") -> list[dict]:
        """Zoom in on a region of an image shown so far, enlarged to fill the view.

        Args:
            bbox_2d: Region as [x1, y1, x2, y2] in pixels of the chosen image as you see it.
            image_index: Which image shown so far to look into: 0 is the original image.
            label: Optional name of what you are looking for.
        """
        args: dict[str, Any] = {"bbox_2d": bbox_2d, "image_index": image_index}
        if label:
            args["label"] = label
        return self._call("zoom_in", args)

    def crop(self, bbox_2d: list[float], image_index: int = 0) -> list[dict]:
        """Crop a region of an image shown so far at its native resolution, without enlarging it.

        Args:
            bbox_2d: Region as [x1, y1, x2, y2] in pixels of the chosen image as you see it.
            image_index: Which image shown so far to look into: 0 is the original image.
        """
        return self._call("crop", {"bbox_2d": bbox_2d, "image_index": image_index})

    def reground(self, image_index: int = 0, bbox_2d: list[float] | None = None) -> list[dict]:
        """Return to an image shown earlier (0 is the original), whole or a region of it.

        Args:
            image_index: Which image shown so far to return to: 0 is the original image.
            bbox_2d: Optional region of that image as [x1, y1, x2, y2] in its pixels.
        """
        args: dict[str, Any] = {"image_index": image_index}
        if bbox_2d is not None:
            args["bbox_2d"] = bbox_2d
        return self._call("reground", args)

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
    from PIL import Image

    pieces = text.split(session.profile.image_placeholder)
    parts: list[dict] = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(pieces) - 1 and i < len(views):
            parts.append({"type": "image", "image": Image.fromarray(session.pixels(views[i]))})
    return parts


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
    profile: str | ModelProfile = "qwen2.5-vl",
) -> Callable[[], MedGymToolEnv]:
    """A zero-argument factory for ``GRPOTrainer(environment_factory=...)``.

    Raises:
        ConfigError: If the config asks for a tool the TRL environment does not expose, or
            sample ids are not unique.
    """
    cfg = config or SessionConfig()
    unsupported = sorted(set(cfg.tools) - set(SUPPORTED_TOOLS))
    if unsupported:
        raise ConfigError(
            f"the TRL environment exposes tools {SUPPORTED_TOOLS}; config asks for {unsupported}"
        )
    if not cfg.tools:
        raise ConfigError("the TRL environment needs at least one tool; got config.tools=()")
    by_id = {s.id: s for s in samples}
    if len(by_id) != len(samples):
        raise ConfigError(f"sample ids must be unique; {len(samples) - len(by_id)} duplicate(s)")
    prof = get_profile(profile)
    images: dict[str, Sequence[MedImage]] = {}

    def factory() -> MedGymToolEnv:
        return MedGymToolEnv(by_id, config=cfg, profile=prof, images=images)

    return factory
