"""Group answers and the majority-vote pseudo label (TTRL) shared by the group rewards."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from medgym.core.answers import MAX_ANSWER_CHARS, clean_answer, resolve_option
from medgym.core.normalize import normalize_answer
from medgym.core.trajectory import Group

__all__ = ["GroupAnswers", "PseudoLabel", "group_answers", "majority_label"]


@dataclass(frozen=True)
class GroupAnswers:
    """The answers of one group, cleaned and normalised.

    Attributes:
        raw: Cleaned answers (``""`` for missing, non-text or over-long ones).
        norm: Normalised answers (option letters resolved to option text first).
    """

    raw: list[str]
    norm: list[str]

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class PseudoLabel:
    """A label inferred from the group itself.

    Attributes:
        text: A representative raw answer (``""`` when the group gave no usable answer).
        norm: Its normalised form.
        confidence: Share of the group's rollouts that support it (in ``[0, 1]``).
        support: Number of rollouts that support it.
    """

    text: str
    norm: str
    confidence: float
    support: int


def group_answers(
    answers: Sequence[object] | Group,
    options: Sequence[str] = (),
    *,
    max_chars: int = MAX_ANSWER_CHARS,
) -> GroupAnswers:
    """Clean and normalise a group's answers (``Group`` or a list of raw answers)."""
    if isinstance(answers, Group):
        options = answers.sample.options
        answers = answers.answers
    raw = [clean_answer(a, max_chars=max_chars) for a in answers]
    norm = [normalize_answer(resolve_option(a, options)) if a else "" for a in raw]
    return GroupAnswers(raw, norm)


def majority_label(answers: GroupAnswers) -> PseudoLabel:
    """The most frequent non-empty normalised answer; ties go to the smallest string.

    The tie rule makes the label independent of rollout order. Confidence counts empty answers
    in the denominator, so a group that mostly failed to answer is not confident.

    Example:
        >>> majority_label(group_answers(["Yes", "yes.", "no", None])).norm
        'yes'
    """
    n = len(answers)
    counts = Counter(a for a in answers.norm if a)
    if not counts or n == 0:
        return PseudoLabel("", "", 0.0, 0)
    best = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    support = counts[best]
    text = min(r for r, m in zip(answers.raw, answers.norm, strict=True) if m == best)
    return PseudoLabel(text, best, support / n, support)
