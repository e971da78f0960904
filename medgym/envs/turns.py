"""What a model turn asks for, judged by the session's rules before any tool runs.

:func:`assess_turn` is the one place that decides, from the text alone, which calls run, whether
the turn answers, and which format errors and penalties it earns. The session applies it and then
runs the calls; :func:`text_trajectory` applies it to a completion that has no environment
behind it (a verl or TRL text scored without the medgym agent loop), so both are judged alike.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from medgym.core.answers import resolve_option
from medgym.core.parsing import ParsedCall, parse_turn
from medgym.core.sample import Sample
from medgym.core.trajectory import Trajectory, Turn
from medgym.envs.config import SessionConfig

__all__ = ["NO_ACTION", "TurnAssessment", "assess_turn", "text_trajectory"]

NO_ACTION = (
    "no tool call or answer found; call a tool inside <tool_call></tool_call> or answer inside "
    "<answer></answer>"
)
"""The error a turn with neither a call nor an answer gets when tools are offered."""
_NO_ANSWER = "no answer found; answer inside <answer></answer>"
_IGNORED = "answer ignored: answer after you have seen the tool results"
_EMPTY = "the answer is empty; write it inside <answer></answer>"


@dataclass
class TurnAssessment:
    """A turn's verdict before its calls run.

    Attributes:
        calls: The calls to run, in order (empty when an answer takes precedence).
        answer: The answer that ends the episode (non-empty, not yet resolved to an option), or
            ``None``.
        errors: Model-readable error lines, in the order the observation shows them.
        penalty: Format penalties earned by the text (tool and budget penalties come later).
        budget_error: The turn wrote more calls than ``max_calls_per_turn``.
    """

    calls: list[ParsedCall] = field(default_factory=list)
    answer: str | None = None
    errors: list[str] = field(default_factory=list)
    penalty: float = 0.0
    budget_error: bool = False


def assess_turn(text: str, config: SessionConfig) -> TurnAssessment:
    """Judge one model turn by the session's rules (see :class:`SessionConfig.precedence`)."""
    fmt_pen = config.penalties.format_error
    parsed = parse_turn(text, max_calls=config.max_calls_per_turn)
    errors = list(parsed.errors)
    penalty = fmt_pen * len(parsed.errors)
    if parsed.unclosed:
        errors.append(f"unclosed tag(s): {_tag_summary(parsed.unclosed)}")
        penalty += fmt_pen
    answer = parsed.answer
    calls: list[ParsedCall] = []
    if parsed.calls and (answer is None or config.precedence == "tools"):
        calls = list(parsed.calls)
        if answer is not None:
            errors.append(_IGNORED)
            answer = None
    elif answer is None and not parsed.errors:
        errors.append(NO_ACTION if config.tools else _NO_ANSWER)
        penalty += fmt_pen
    elif answer is not None and not answer:
        errors.append(_EMPTY)
        penalty += fmt_pen
        answer = None
    return TurnAssessment(
        calls=calls,
        answer=answer,
        errors=errors,
        penalty=penalty,
        budget_error=any("too many tool calls" in e for e in parsed.errors),
    )


def text_trajectory(
    text: str,
    sample: Sample,
    config: SessionConfig,
    *,
    trajectory_id: str | None = None,
) -> Trajectory:
    """A one-turn trajectory of ``text`` with no environment behind it.

    The text is judged by :func:`assess_turn`. Tool calls it asks for cannot run without an
    environment: a turn that only calls tools has not answered, as in the session. The episode
    is over after this turn (the text is all there is), so a turn without an answer is charged
    the no-answer penalty, as a session whose budget ran out.

    Example:
        >>> from medgym.core.images import ImageRef
        >>> s = Sample(id="q", images=(ImageRef(uri="x.png"),), question="?", answer="yes")
        >>> text_trajectory("<answer>yes</answer>", s, SessionConfig()).answer
        'yes'
    """
    verdict = assess_turn(text, config)
    answer = resolve_option(verdict.answer, sample.options) if verdict.answer is not None else None
    penalty = verdict.penalty + (config.penalties.no_answer if answer is None else 0.0)
    turn = Turn(
        index=0, action=text, role="user", answer=answer, errors=verdict.errors, penalty=penalty
    )
    return Trajectory(
        id=trajectory_id or uuid.uuid4().hex[:12],
        sample_id=sample.id,
        turns=[turn],
        answer=answer,
        terminated=answer is not None,
        truncated=answer is None,
        metrics={"turns": 1.0, "format_errors": float(len(verdict.errors))},
    )


def _tag_summary(tags: Sequence[str]) -> str:
    """``tool_call x3, answer``: each tag once with its count, in first-seen order (bounded)."""
    counts = dict(Counter(tags))
    return ", ".join(f"{t} x{n}" if n > 1 else t for t, n in counts.items())
