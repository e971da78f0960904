"""Reward-side text scores: the think/answer format and the MediX-R1 modality tag.

The per-answer scores (exact match, token overlap, option letters) live in
:mod:`medgym.core.answers`, shared with the episode engine; they are re-exported here.
"""

from __future__ import annotations

import re

from medgym.core.answers import (
    MAX_ANSWER_CHARS,
    clean_answer,
    closed_match,
    resolve_option,
    score_answer,
    token_f1,
    token_recall,
)
from medgym.core.normalize import normalize_answer

__all__ = [
    "MAX_ANSWER_CHARS",
    "clean_answer",
    "closed_match",
    "format_score",
    "modality_score",
    "normalize_answer",
    "resolve_option",
    "score_answer",
    "token_f1",
    "token_recall",
]

_THINK_ANSWER = re.compile(
    r"^\s*(?:<(?P<mtag>modality)>.*?</(?P=mtag)>\s*)?"
    r"<(?P<t>think|thinking)>.+?</(?P=t)>\s*<answer>(?P<a>.+?)</answer>\s*$",
    re.DOTALL,
)
_MODALITY_TAG = re.compile(r"<modality>(.*?)</modality>", re.DOTALL | re.IGNORECASE)


def format_score(text: str | None, *, require_modality: bool = False) -> float:
    """1.0 for ``[<modality>..</modality>] <think>..</think> <answer>..</answer>`` (or thinking).

    Args:
        text: The model's last turn.
        require_modality: Also require the MediX-R1 modality tag in front.
    """
    if not isinstance(text, str):
        return 0.0
    m = _THINK_ANSWER.match(text)
    if m is None or not m.group("a").strip():
        return 0.0
    if require_modality and m.group("mtag") is None:
        return 0.0
    return 1.0


def modality_score(text: str | None, modality: str | None) -> float:
    """1.0 when the ``<modality>`` tag of ``text`` names ``modality`` (synonyms allowed).

    Returns 0.0 when either is missing.
    """
    if not isinstance(text, str) or not modality:
        return 0.0
    m = _MODALITY_TAG.search(text)
    if m is None:
        return 0.0
    said = normalize_answer(m.group(1))
    return float(bool(said) and said == normalize_answer(modality))
