from __future__ import annotations

import pytest

from medgym.rewards.scoring import (
    MAX_ANSWER_CHARS,
    clean_answer,
    closed_match,
    format_score,
    modality_score,
    score_answer,
    token_f1,
    token_recall,
)


@pytest.mark.parametrize(
    ("pred", "ref", "f1"),
    [("left upper lobe", "left upper lobe", 1.0),
     ("nodule in left upper lobe", "left upper lobe", 0.75),
     ("left lobe", "left upper lobe", 0.8), ("liver", "spleen", 0.0), ("", "x", 0.0),
     (None, "x", 0.0),
     ("x", "", 0.0), ("RUL", "right upper lobe", 1.0), ("the the", "the", 0.0)],
    ids=["exact", "extra-tokens", "missing-token", "disjoint", "empty", "none", "empty-ref",
         "abbreviation", "articles-only"],
)  # fmt: skip
def test_token_f1(pred: str | None, ref: str, f1: float) -> None:
    assert token_f1(pred, ref) == pytest.approx(f1)


def test_synonym_aware_closed_match_and_recall() -> None:
    assert closed_match("CT", "computed tomography") == 1.0
    assert closed_match("MR", "MRI") == 1.0
    assert token_recall("LLL", "left lower lobe") == 1.0
    assert score_answer("10cm", "10 centimeters", answer_type="closed") == 1.0


@pytest.mark.parametrize(
    "bad",
    ["", "   ", None, 7, ["yes"], "yes " * (MAX_ANSWER_CHARS // 2)],
    ids=["empty", "blank", "none", "int", "list", "too-long"],
)
def test_bad_answers_score_zero(bad: object) -> None:
    assert clean_answer(bad) == ""
    assert closed_match(bad, "yes") == 0.0  # type: ignore[arg-type]
    assert token_recall(bad, "yes") == 0.0  # type: ignore[arg-type]
    assert token_f1(bad, "yes") == 0.0  # type: ignore[arg-type]
    assert score_answer(bad, "yes") == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "need_modality", "score"),
    [("<think>a</think><answer>b</answer>", False, 1.0),
     ("<thinking>a</thinking>\n<answer>b</answer>", False, 1.0),
     ("<modality>CT</modality><think>a</think><answer>b</answer>", True, 1.0),
     ("<think>a</think><answer>b</answer>", True, 0.0),
     ("<answer>b</answer>", False, 0.0), ("<think>a</think><answer> </answer>", False, 0.0),
     ("<think>a</think><answer>b</answer> trailing", False, 0.0), (None, False, 0.0)],
    ids=["think", "thinking", "modality", "modality-missing", "no-think", "empty-answer",
         "trailing-text", "none"],
)  # fmt: skip
def test_format_score(text: str | None, need_modality: bool, score: float) -> None:
    assert format_score(text, require_modality=need_modality) == score


def test_modality_score() -> None:
    text = "<modality>Computed Tomography</modality><think>a</think><answer>b</answer>"
    assert modality_score(text, "CT") == 1.0
    assert modality_score(text, "MRI") == 0.0
    assert modality_score(text, None) == 0.0
    assert modality_score("<think>a</think>", "CT") == 0.0
