from __future__ import annotations

import pytest

from medgym.errors import ConfigError
from medgym.rewards import AccuracyReward, FormatReward, ModalityReward, ToolUseReward
from medgym.rewards.testing import make_group, make_trajectory

TL = (0, (0.0, 0.0, 256.0, 256.0))


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("auto", [1.0, 2 / 3, 0.0]), ("exact", [1.0, 0.0, 0.0]), ("recall", [1.0, 2 / 3, 0.0]),
     ("f1", [1.0, 0.8, 0.0])],
    ids=["auto", "exact", "recall", "f1"],
)  # fmt: skip
def test_accuracy_metrics(metric: str, expected: list[float]) -> None:
    g = make_group(["left upper lobe", "left lobe", None], label="left upper lobe")
    assert AccuracyReward(metric).reward(g).rewards == pytest.approx(expected)  # type: ignore[arg-type]


def test_accuracy_unlabelled_and_bad_metric() -> None:
    res = AccuracyReward().reward(make_group(["x1"]))
    assert res.rewards == [0.0] and res.diagnostics["reason"] == "no label"
    with pytest.raises(ConfigError, match="metric"):
        AccuracyReward("bleu")  # type: ignore[arg-type]


def test_format_modality_and_tool_use() -> None:
    g = make_group(["yes", "yes", None], [[TL], [], []], label="yes", modality="CT")
    g.trajectories[1].turns[
        -1
    ].action = "<modality>CT</modality><think>x</think><answer>yes</answer>"
    g.trajectories[1] = make_trajectory("yes", [], index=1, failed_calls=1,
                                        final_text=g.trajectories[1].turns[-1].action)  # fmt: skip
    assert FormatReward().reward(g).rewards == [1.0, 1.0, 0.0]
    assert FormatReward(require_modality=True).reward(g).rewards == [0.0, 1.0, 0.0]
    assert ModalityReward().reward(g).rewards == [0.0, 1.0, 0.0]
    assert ToolUseReward().reward(g).rewards == [1.0, 0.0, 0.0]
    g.trajectories[0].metrics["format_errors"] = 1.0
    assert FormatReward().reward(g).rewards[0] == 0.0
