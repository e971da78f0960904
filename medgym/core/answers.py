"""Answer scores every layer shares: cleaning, option letters, exact match, token overlap.

The episode engine (:mod:`medgym.envs`) and the rewards (:mod:`medgym.rewards`) both score answers
with these functions, so a closed answer means the same in a gym step, a verl score and an
evaluation. Every score takes the raw answer (``str``, ``None`` or anything a caller passed by
mistake) and returns a finite float in ``[0, 1]``: empty answers, non-strings and answers longer
than :data:`MAX_ANSWER_CHARS` score 0 (a cap against judge and overlap gaming, as DeepEyes does).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from medgym.core.normalize import DEFAULT_SYNONYMS, SynonymTable, normalize_answer, tokens

__all__ = [
    "MAX_ANSWER_CHARS",
    "clean_answer",
    "closed_match",
    "resolve_option",
    "score_answer",
    "token_f1",
    "token_recall",
]

MAX_ANSWER_CHARS = 1000
"""Answers longer than this (in characters, after stripping) score 0 everywhere."""

_OPTION = re.compile(r"^\(?([a-zA-Z])[\).:]?(?:\s+|$)(.*)$", re.DOTALL)


def clean_answer(answer: object, *, max_chars: int = MAX_ANSWER_CHARS) -> str:
    """The answer as a stripped string, or ``""`` when it is missing, not text, or too long.

    Example:
        >>> clean_answer("  oval "), clean_answer(None), clean_answer(3), clean_answer("x" * 5000)
        ('oval', '', '', '')
    """
    if not isinstance(answer, str):
        return ""
    a = answer.strip()
    return a if len(a) <= max_chars else ""


def resolve_option(answer: str, options: Sequence[str]) -> str:
    """Map an option letter (``B``, ``(b)``, ``B: text``) to that option's text, else pass through.

    Only applies when ``options`` are given and the letter is in range.
    """
    if not options or not isinstance(answer, str):
        return answer
    a = answer.strip()
    m = _OPTION.match(a)
    if m:
        idx = ord(m.group(1).upper()) - ord("A")
        rest = m.group(2).strip()
        if 0 <= idx < len(options) and (
            not rest or normalize_answer(rest) == normalize_answer(options[idx])
        ):
            return options[idx]
    return answer


def closed_match(
    prediction: str | None,
    reference: str,
    options: Sequence[str] = (),
    *,
    synonyms: SynonymTable | None = DEFAULT_SYNONYMS,
) -> float:
    """1.0 when the prediction equals the reference after normalisation (option letters allowed)."""
    pred_text = clean_answer(prediction)
    if not pred_text:
        return 0.0
    pred = normalize_answer(resolve_option(pred_text, options), synonyms=synonyms)
    ref = normalize_answer(resolve_option(reference, options), synonyms=synonyms)
    return float(bool(ref) and pred == ref)


def token_recall(
    prediction: str | None, reference: str, *, synonyms: SynonymTable | None = DEFAULT_SYNONYMS
) -> float:
    """Share of the reference's normalised tokens found in the prediction (VQA-RAD/SLAKE recall)."""
    pred_text = clean_answer(prediction)
    if not pred_text:
        return 0.0
    ref = tokens(reference, synonyms=synonyms)
    if not ref:
        return 0.0
    pred = set(tokens(pred_text, synonyms=synonyms))
    return sum(tok in pred for tok in ref) / len(ref)


def token_f1(
    prediction: str | None, reference: str, *, synonyms: SynonymTable | None = DEFAULT_SYNONYMS
) -> float:
    """Harmonic mean of token precision and recall over normalised tokens (multiset overlap).

    Example:
        >>> round(token_f1("nodule in left upper lobe", "left upper lobe"), 3)
        0.75
    """
    pred_text = clean_answer(prediction)
    if not pred_text:
        return 0.0
    ref = Counter(tokens(reference, synonyms=synonyms))
    pred = Counter(tokens(pred_text, synonyms=synonyms))
    common = sum((ref & pred).values())
    if not common:
        return 0.0
    precision = common / sum(pred.values())
    recall = common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def score_answer(
    prediction: str | None,
    reference: str | None,
    *,
    answer_type: str = "open",
    options: Sequence[str] = (),
) -> float:
    """The supervised score of one answer: closed -> exact match; open -> token recall.

    Returns 0.0 when there is no reference (label-free data is scored by group rewards).
    """
    if reference is None:
        return 0.0
    if answer_type == "closed":
        return closed_match(prediction, reference, options)
    exact = closed_match(prediction, reference, options)
    return exact if exact else token_recall(prediction, reference)
