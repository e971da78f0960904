"""The episode engine: one place for parsing, tools, budgets, penalties and the trajectory.

The gym env, the tool server, the verl agent loop and the TRL environment are thin adapters over
:class:`EpisodeSession`; none of them re-implements a rule that lives here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medgym.core.answers import resolve_option
from medgym.core.images import MedImage, plane_shape
from medgym.core.sample import Sample
from medgym.core.trajectory import ToolCallRecord, Trajectory, Turn
from medgym.core.view import ViewSpec, full_view
from medgym.envs.backend import LOCAL, ToolBackend
from medgym.envs.config import SessionConfig
from medgym.envs.conversation import Conversation
from medgym.envs.profiles import DEFAULT_PROFILE, ModelProfile, get_profile
from medgym.envs.prompts import question_text, system_prompt
from medgym.envs.scoring import score_episode, turns_clean
from medgym.envs.turns import assess_turn
from medgym.errors import ConfigError, ToolError
from medgym.tools.base import ImageInfo, ToolContext, ToolRegistry

__all__ = ["COORDINATE_ARGS", "EpisodeSession", "StepResult"]

COORDINATE_ARGS = ("bbox_2d", "line_2d")
"""Tool arguments written in the profile's box convention (converted to view pixels here)."""

logger = logging.getLogger(__name__)

_METRICS = (
    "turns", "tool_calls", "tool_ok", "tool_errors", "format_errors", "budget_errors",
    "images_shown", "clamped", "enlarged", "slices_viewed",
)  # fmt: skip


@dataclass
class StepResult:
    """What one model turn led to.

    Attributes:
        observation: Text the environment replies with ('' when the episode ended).
        new_views: Indices of views shown in the reply (one ``<image>`` each, in order).
        reward: Reward for this step: minus this turn's penalties, plus the final score when
            the episode ends.
        terminated: An answer was given.
        truncated: The turn budget ran out without an answer.
        info: ``errors``, ``penalty``, ``metrics`` and, at the end, ``reward_parts``.
    """

    observation: str
    new_views: list[int]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)


class EpisodeSession:
    """One episode of one sample.

    Args:
        sample: The VQA item.
        config: Budgets, penalties, tools and prompt.
        profile: Model profile (name or object): box convention, view sizes, prompt layout.
        tools: Registry to take ``config.tools`` from (default: all medgym tools).
        images: Decoded sample images; loaded by the backend when omitted.
        backend: Where images are decoded, tools run and views rendered (default: in process;
            :class:`medgym.serving.remote.ServerBackend` for a tool server).
        trajectory_id: Id of the trajectory this session records.

    Example:
        >>> from medgym.data import load
        >>> s = EpisodeSession(load("synthetic", num_samples=1)[0])
        >>> r = s.apply_turn("<answer>yes</answer>")
        >>> r.terminated
        True
    """

    def __init__(
        self,
        sample: Sample,
        *,
        config: SessionConfig | None = None,
        profile: str | ModelProfile = DEFAULT_PROFILE,
        tools: ToolRegistry | None = None,
        images: Sequence[MedImage] | None = None,
        trajectory_id: str | None = None,
        group_id: str | None = None,
        policy: str | None = None,
        backend: ToolBackend | None = None,
    ) -> None:
        self.sample = sample
        self.config = config or SessionConfig()
        self.profile = get_profile(profile)
        self.backend: ToolBackend = backend or LOCAL
        if tools is None:
            from medgym.tools import TOOLS

            tools = TOOLS
        self.tools = self.backend.bind(sample, tools.subset(self.config.tools))
        if images is None:
            images = self.backend.load_images(sample)
        if len(images) != len(sample.images):
            raise ConfigError(
                f"sample {sample.id} has {len(sample.images)} image(s) but {len(images)} were given"
            )
        self.images: tuple[MedImage, ...] = tuple(images)
        self._infos = tuple(ImageInfo.of(im) for im in self.images)
        self.tool_schemas: list[dict[str, Any]] = self.tools.schemas()
        self.views: list[ViewSpec] = [
            full_view(im, self.profile.view_size(im.width, im.height, upscale=False), image_index=k)
            for k, im in enumerate(self.images)
        ]
        self.turns: list[Turn] = []
        self.metrics: dict[str, float] = dict.fromkeys(_METRICS, 0.0)
        self.metrics["slices_viewed"] = float(len(_slices_seen(self.views, self.images)))
        self.answer: str | None = None
        self.terminated = False
        self.truncated = False
        self.reward_parts: dict[str, float] = {}
        self._pixels: dict[int, np.ndarray] = {}
        self.trajectory_id = trajectory_id or uuid.uuid4().hex[:12]
        self.group_id = group_id
        self.policy = policy
        self.parent_id: str | None = None
        self.branch_turn: int | None = None
        self.system_prompt = system_prompt(
            self.profile, self.tool_schemas, template=self.config.prompt
        )
        placeholders = "".join(self.profile.image_placeholder for _ in self.images)
        self.prompt = f"{placeholders}{question_text(sample)}"
        self.convo = Conversation(
            self.system_prompt, question_text(sample), len(self.images),
            self.profile.image_placeholder,
        )  # fmt: skip

    # ------------------------------------------------------------------ state
    @property
    def done(self) -> bool:
        """Whether the episode has ended."""
        return self.terminated or self.truncated

    @property
    def penalty_total(self) -> float:
        """Penalties charged so far (each turn's, the no-answer penalty included)."""
        return float(sum(t.penalty for t in self.turns))

    @property
    def format_ok(self) -> bool:
        """Whether no model turn so far had an error or a refused tool call."""
        return turns_clean(self.turns)

    @property
    def turns_left(self) -> int:
        """Model turns left before truncation (injected turns do not count)."""
        return self.config.max_turns - int(self.metrics["turns"])

    @property
    def images_left(self) -> int:
        """New images the episode may still show."""
        return self.config.max_images - int(self.metrics["images_shown"])

    def pixels(self, view_index: int) -> np.ndarray:
        """Rendered pixels of a view (rendered once, then cached; do not modify)."""
        arr = self._pixels.get(view_index)
        if arr is None:
            arr = self.backend.render(self.sample, self.images, self.views[view_index])
            arr.setflags(write=False)
            self._pixels[view_index] = arr
        return arr

    def tool_context(self) -> ToolContext:
        """What tools see: the views so far, image facts, the profile's sizer."""
        return ToolContext(
            views=tuple(self.views),
            images=self._infos,
            sizer=self.profile.view_size,
            config=self.config.tool_config,
        )

    # ------------------------------------------------------------------ tools
    def _model_args_to_view_px(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Model coordinates (``bbox_2d``, ``line_2d``) to view pixels: the one place it happens."""
        if self.profile.box_format == "pixel":
            return arguments
        idx = arguments.get("image_index", 0)
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(self.views):
            return arguments
        out = dict(arguments)
        for key in COORDINATE_ARGS:
            box = arguments.get(key)
            if not isinstance(box, (list, tuple)) or len(box) != 4:
                continue
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
                continue  # let the tool produce the precise error
            out[key] = list(self.profile.to_view_px(box, self.views[idx].out_size))
        return out

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolCallRecord:
        """Run one tool call against the session's views; model errors become a failed record.

        A successful call that makes a view appends it to :attr:`views` and counts against the
        image budget. Budget and tool errors charge their penalty to the record.
        """
        arguments = dict(arguments or {})
        pen = self.config.penalties
        if self.images_left <= 0:
            self.metrics["budget_errors"] += 1
            return ToolCallRecord(
                name=name, arguments=arguments, ok=False, penalty=pen.budget, error="BudgetError",
                text=f"image budget spent ({self.config.max_images} images); answer now "
                "inside <answer></answer>",
            )  # fmt: skip
        self.metrics["tool_calls"] += 1
        try:
            tool = self.tools.get(name)
            result = tool(self.tool_context(), self._model_args_to_view_px(arguments))
        except ToolError as e:
            self.metrics["tool_errors"] += 1
            return ToolCallRecord(
                name=name, arguments=arguments, ok=False, text=f"Error: {e}",
                penalty=pen.tool_error, error=type(e).__name__,
            )  # fmt: skip
        self.metrics["tool_ok"] += 1
        for note in result.notes:
            if note in self.metrics:
                self.metrics[note] += 1
        view_index = None
        if result.view is not None:
            self.views.append(result.view)
            view_index = len(self.views) - 1
            self.metrics["images_shown"] += 1
            self.metrics["slices_viewed"] = float(len(_slices_seen(self.views, self.images)))
        return ToolCallRecord(
            name=tool.name,
            arguments=arguments,
            ok=result.ok,
            text=result.text,
            view_index=view_index,
            bbox_px=result.view.bbox_px if result.view is not None else None,
            slice_index=result.view.slice_index if result.view is not None else None,
            reformat=result.view.reformat if result.view is not None else None,
            image_index=result.view.image_index if result.view is not None else None,
            penalty=result.penalty,
        )

    # ------------------------------------------------------------------ turns
    def apply_turn(
        self,
        text: str,
        *,
        token_ids: list[int] | None = None,
        token_logprobs: list[float] | None = None,
        token_entropies: list[float] | None = None,
    ) -> StepResult:
        """Parse and execute one model turn. Model errors never raise.

        Raises:
            ConfigError: If the episode is already over (a programmer error).
        """
        if self.done:
            raise ConfigError("the episode is over; start a new session (env.reset())")
        pen = self.config.penalties
        verdict = assess_turn(text, self.config)
        errors = verdict.errors
        penalty = verdict.penalty
        if verdict.budget_error:
            self.metrics["budget_errors"] += 1
        records: list[ToolCallRecord] = []
        for call in verdict.calls:
            rec = self.call_tool(call.name, call.arguments)
            records.append(rec)
            penalty += rec.penalty
        self.metrics["format_errors"] += len(errors)
        self.metrics["turns"] += 1
        turn_index = len(self.turns)
        new_views = [r.view_index for r in records if r.view_index is not None]
        if verdict.answer is not None:
            self.answer = resolve_option(verdict.answer, self.sample.options)
            self.terminated = True
        elif self.turns_left <= 0:
            self.truncated = True
            penalty += pen.no_answer
        reward = -penalty
        observation = ""
        if not self.done:
            observation = self._observation(records, errors)
        turn = Turn(
            index=turn_index, action=text, observation=observation,
            role=self.profile.tool_result_role if records else "user", new_views=new_views,
            tool_calls=records, answer=self.answer if self.terminated else None, errors=errors,
            penalty=penalty, token_ids=token_ids, token_logprobs=token_logprobs,
            token_entropies=token_entropies,
        )  # fmt: skip
        self.turns.append(turn)
        self.convo.add_turn(turn)
        info: dict[str, Any] = {"errors": errors, "penalty": penalty, "metrics": dict(self.metrics)}
        if self.done:
            reward += self._finish()
            info["reward_parts"] = dict(self.reward_parts)
        return StepResult(observation, new_views, reward, self.terminated, self.truncated, info)

    def _observation(self, records: list[ToolCallRecord], errors: list[str]) -> str:
        ph = self.profile.image_placeholder
        parts = [r.text + (ph if r.view_index is not None else "") for r in records]
        parts += [f"Error: {e}" for e in errors]
        if self.config.last_turn_hint and self.turns_left == 1:
            parts.append("This is your last turn: give your answer inside <answer></answer>.")
        body = "\n".join(parts)
        return self.profile.wrap_result(body) if records else body

    def inject(self, text: str, *, role: str = "user") -> None:
        """Insert text into the conversation without a model turn (EVR's reground mode).

        Injected text does not use the turn budget; it is recorded with ``injected=True``.
        """
        if self.done:
            raise ConfigError("cannot inject into a finished episode")
        if role not in ("user", "assistant"):
            raise ConfigError(f"inject role must be 'user' or 'assistant'; got {role!r}")
        turn = Turn(
            index=len(self.turns),
            action=text if role == "assistant" else "",
            observation=text if role == "user" else "",
            role="user",
            injected=True,
        )
        self.turns.append(turn)
        self.convo.add_turn(turn)

    def _finish(self) -> float:
        """Score the finished episode; returns its reward less the penalties already paid."""
        score = score_episode(self.trajectory(), self.sample, self.config)
        self.reward_parts = score.parts()
        return score.earned

    # ------------------------------------------------------------------ views of the state
    def conversation(self, fmt: str = "spec") -> list[dict[str, Any]]:
        """The history as chat messages (see :meth:`Conversation.render` for formats)."""
        return self.convo.render(fmt, self.pixels)

    def fork(self, trajectory_id: str | None = None) -> EpisodeSession:
        """An independent copy sharing immutable state (sample, images, specs, rendered pixels)."""
        new = object.__new__(EpisodeSession)
        new.__dict__.update(self.__dict__)
        new.views = list(self.views)
        new.turns = list(self.turns)
        new.metrics = dict(self.metrics)
        new.reward_parts = dict(self.reward_parts)
        new._pixels = dict(self._pixels)
        new.convo = self.convo.copy()
        new.trajectory_id = trajectory_id or uuid.uuid4().hex[:12]
        new.parent_id = self.trajectory_id
        new.branch_turn = len(self.turns)
        return new

    def trajectory(self) -> Trajectory:
        """The episode so far as a :class:`Trajectory`."""
        return Trajectory(
            id=self.trajectory_id,
            sample_id=self.sample.id,
            group_id=self.group_id,
            parent_id=self.parent_id,
            branch_turn=self.branch_turn,
            policy=self.policy,
            system_prompt=self.system_prompt,
            prompt=self.prompt,
            turns=list(self.turns),
            views=list(self.views),
            answer=self.answer,
            terminated=self.terminated,
            truncated=self.truncated,
            reward=self.reward_parts.get("total"),
            reward_parts=dict(self.reward_parts),
            metrics=dict(self.metrics),
        )


def _slices_seen(
    views: Sequence[ViewSpec], images: Sequence[MedImage]
) -> set[tuple[int, str | None, int]]:
    """``(image, plane, slice)`` the views have shown (an overview shows each of its slices)."""
    seen: set[tuple[int, str | None, int]] = set()
    for v in views:
        if v.montage is not None:
            seen.update((v.image_index, v.reformat, k) for k in v.montage)
        else:
            im = images[v.image_index]
            depth = plane_shape(im.width, im.height, im.num_slices, v.reformat)[2]
            k = depth // 2 if v.slice_index is None else v.slice_index
            seen.add((v.image_index, v.reformat, k))
    return seen
