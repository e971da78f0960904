"""Per-sample supervised scores: answer normalisation, closed accuracy, open token recall."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

__all__ = ["closed_match", "normalize_answer", "resolve_option", "score_answer", "token_recall"]

_ARTICLES = {"a", "an", "the"}
_YES = {"yes", "y", "true", "correct", "present", "positive", "yes it is", "there is"}
_NO = {"no", "n", "false", "incorrect", "absent", "negative", "none", "not present", "there is not"}
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}  # fmt: skip
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "-."})
_OPTION = re.compile(r"^\(?([a-zA-Z])[\).:]?(?:\s+|$)(.*)$", re.DOTALL)


def normalize_answer(text: str | None) -> str:
    """Lower-case, strip accents, punctuation and articles, map yes/no variants and numbers.

    Example:
        >>> normalize_answer("  Yes, there is. ")
        'yes'
        >>> normalize_answer("Two nodules")
        '2 nodules'
    """
    if not text:
        return ""
    t = unicodedata.normalize("NFKC", text).lower().strip()
    t = t.translate(_PUNCT)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)  # keep decimal points only
    words = [_NUMBER_WORDS.get(w, w) for w in t.split() if w not in _ARTICLES]
    joined = " ".join(words)
    if joined in _YES or (words and words[0] == "yes"):
        return "yes"
    if joined in _NO or (words and words[0] == "no"):
        return "no"
    return joined


def resolve_option(answer: str, options: Sequence[str]) -> str:
    """Map an option letter (``B``, ``(b)``, ``B: text``) to that option's text, else pass through.

    Only applies when ``options`` are given and the letter is in range.
    """
    if not options:
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


def closed_match(prediction: str | None, reference: str, options: Sequence[str] = ()) -> float:
    """1.0 when the prediction equals the reference after normalisation (option letters allowed)."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(resolve_option(prediction, options))
    ref = normalize_answer(resolve_option(reference, options))
    return float(bool(ref) and pred == ref)


def token_recall(prediction: str | None, reference: str) -> float:
    """Share of the reference's normalised tokens found in the prediction (VQA-RAD/SLAKE recall)."""
    if prediction is None:
        return 0.0
    ref = normalize_answer(reference).split()
    if not ref:
        return 0.0
    pred = set(normalize_answer(prediction).split())
    return sum(tok in pred for tok in ref) / len(ref)


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
