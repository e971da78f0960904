"""The per-episode score: one function of a trajectory and its sample, used by every adapter.

``total = accuracy + format_weight * format - penalty``

- ``accuracy``: the final answer against the sample's label
  (:func:`~medgym.core.answers.score_answer`: exact match after normalisation and option letters
  for closed questions, token recall for open ones); 0 for unlabelled samples, which group
  rewards score instead.
- ``format``: 1 when the episode ended with an answer and no turn had a model error (a parse
  error, an empty answer, a refused tool call).
- ``penalty``: the sum of the penalties its turns were charged
  (:class:`~medgym.envs.config.Penalties`, the no-answer penalty included).

The gym env, the TRL reward, verl's ``compute_score`` and reward manager, the evaluation harness
and the tool server's turn endpoint all call :func:`score_episode`, so the same rollout gets the
same parts whichever trainer or server sees it. Group rewards (label-free) replace
``accuracy + format_weight * format`` by the group's value and subtract the same ``penalty``
(:func:`group_total`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from medgym.core.answers import score_answer
from medgym.core.sample import Sample
from medgym.core.trajectory import Trajectory, Turn
from medgym.envs.config import SessionConfig

__all__ = [
    "EpisodeScore",
    "episode_format",
    "episode_penalty",
    "group_total",
    "score_episode",
    "turns_clean",
]


@dataclass(frozen=True)
class EpisodeScore:
    """The parts of one episode's score (all finite; see the module docstring).

    Attributes:
        accuracy: Final answer against the label, in [0, 1] (0 without a label).
        format: 1.0 when the episode answered without a model error in any turn, else 0.0.
        penalty: Penalties charged over the episode (>= 0).
        labelled: 1.0 when the sample has a label.
        total: ``accuracy + format_weight * format - penalty``.
    """

    accuracy: float
    format: float
    penalty: float
    labelled: float
    total: float
    earned: float = field(default=0.0, repr=False)
    """``accuracy + format_weight * format``: what the last step pays on top of its penalties."""

    def parts(self) -> dict[str, float]:
        """The parts as a dict (``info["reward_parts"]``, verl's ``reward_extra_info``)."""
        return {
            "accuracy": self.accuracy,
            "format": self.format,
            "penalty": self.penalty,
            "labelled": self.labelled,
            "total": self.total,
        }


def turns_clean(turns: Sequence[Turn]) -> bool:
    """Whether no model turn had an error line or a refused tool call (injected turns skipped)."""
    return not any(t.errors or any(not c.ok for c in t.tool_calls) for t in turns if not t.injected)


def episode_format(trajectory: Trajectory) -> float:
    """1.0 when the episode answered and no model turn had an error or a refused call."""
    return float(trajectory.terminated and turns_clean(trajectory.turns))


def episode_penalty(trajectory: Trajectory) -> float:
    """The penalties charged over the episode (each turn's ``penalty``, no-answer included)."""
    return float(sum(t.penalty for t in trajectory.turns))


def score_episode(trajectory: Trajectory, sample: Sample, config: SessionConfig) -> EpisodeScore:
    """Score a finished (or unfinished) episode of ``sample`` under ``config``.

    Args:
        trajectory: The episode as recorded by :class:`~medgym.envs.session.EpisodeSession`
            (its ``answer`` already has option letters resolved).
        sample: The sample it answered; its label, answer type and options are used.
        config: The session config (``format_weight``).

    Returns:
        The score's parts.

    Example:
        >>> from medgym.core.images import ImageRef
        >>> s = Sample(id="q", images=(ImageRef(uri="x.png"),), question="?", answer="yes",
        ...            answer_type="closed")
        >>> t = Trajectory(id="t", sample_id="q", answer="yes", terminated=True)
        >>> score_episode(t, s, SessionConfig()).total
        1.1
    """
    accuracy = score_answer(
        trajectory.answer, sample.answer, answer_type=sample.answer_type, options=sample.options
    )
    fmt = episode_format(trajectory)
    penalty = episode_penalty(trajectory)
    earned = accuracy + config.format_weight * fmt
    return EpisodeScore(
        accuracy=float(accuracy),
        format=fmt,
        penalty=penalty,
        labelled=float(sample.labelled),
        total=float(earned - penalty),
        earned=float(earned),
    )


def group_total(group_value: float, score: EpisodeScore) -> float:
    """A rollout's reward under a group reward: the group's value minus the episode's penalty."""
    return float(group_value) - score.penalty
