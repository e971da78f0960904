from __future__ import annotations

import pytest

from medgym.rewards.scoring import (
    closed_match,
    normalize_answer,
    resolve_option,
    score_answer,
    token_recall,
)

OPTS = ("round", "oval", "irregular")


@pytest.mark.parametrize(
    ("text", "norm"),
    [("Yes.", "yes"), ("  YES, there is ", "yes"), ("No, there is not.", "no"), ("absent", "no"),
     ("Two", "2"), ("The left lung", "left lung"), ("3.5 cm", "3.5 cm"), ("", ""), (None, ""),
     ("Ｌｅｆｔ", "left")],
    ids=["yes-dot", "yes-phrase", "no-phrase", "absent", "number-word", "article", "decimal",
         "empty", "none", "fullwidth"],
)  # fmt: skip
def test_normalize(text: str | None, norm: str) -> None:
    assert normalize_answer(text) == norm


@pytest.mark.parametrize(
    ("pred", "score"),
    [("oval", 1.0), ("B", 1.0), ("(b)", 1.0), ("B. oval", 1.0), ("b: Oval", 1.0), ("C", 0.0),
     ("Z", 0.0), ("B. round", 0.0), ("", 0.0), (None, 0.0)],
    ids=["text", "letter", "paren-letter", "letter-text", "lower-letter-text", "wrong-letter",
         "letter-out-of-range", "letter-text-mismatch", "empty", "none"],
)  # fmt: skip
def test_closed_with_options(pred: str | None, score: float) -> None:
    assert closed_match(pred, "oval", OPTS) == score


def test_resolve_option_passthrough() -> None:
    assert resolve_option("A", ()) == "A"
    assert resolve_option("A", OPTS) == "round"


def test_open_recall_and_score() -> None:
    assert token_recall("nodule in the left upper lobe", "left upper lobe") == 1.0
    assert token_recall("left lobe", "left upper lobe") == pytest.approx(2 / 3)
    assert token_recall(None, "x") == 0.0
    assert score_answer("left lobe", "left upper lobe") == pytest.approx(2 / 3)
    assert score_answer("yes", "Yes", answer_type="closed") == 1.0
    assert score_answer("yes", None) == 0.0  # unlabelled
