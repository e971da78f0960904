from __future__ import annotations

import pytest

from medgym.errors import ConfigError
from medgym.rewards import HashingEmbedder, HSRReward
from medgym.rewards.hsr import HSRConfig
from medgym.rewards.testing import make_group

ANSWERS = ["Pleural effusion.", "fluid in pleural space", "pneumothorax", "effusion", None]


def test_hsr_against_label_hand_computed(table_embedder) -> None:  # type: ignore[no-untyped-def]
    g = make_group(ANSWERS, label="pleural effusion")
    res = HSRReward(table_embedder, reference="label").reward(g)
    # fluid...: F1 = 1/3, cos = 0.96 -> (1/3 + 0.96) / 2; effusion: F1 = 2/3, cos = 0.9.
    expected = [1.0, (1 / 3 + 0.96) / 2, 0.0, (2 / 3 + 0.9) / 2, 0.0]
    assert res.rewards == pytest.approx(expected, abs=1e-3)
    assert res.diagnostics["reference"] == "label"


def test_hsr_cap_and_floor(table_embedder) -> None:  # type: ignore[no-untyped-def]
    g = make_group(ANSWERS, label="pleural effusion")
    capped = HSRReward(table_embedder, reference="label", w_f1=0.0, w_embed=1.0, cap=0.9)
    assert capped.reward(g).rewards[1] == pytest.approx(0.9)
    floored = HSRReward(table_embedder, reference="label", floor=0.7)
    assert floored.reward(g).rewards[1] == 0.0  # 0.647 < floor
    assert max(floored.reward(g).rewards[1:]) < 1.0


def test_hsr_label_free_uses_pseudo_label(table_embedder) -> None:  # type: ignore[no-untyped-def]
    answers = ["pneumothorax", "pneumothorax", "pneumothorax", "effusion"]
    res = HSRReward(table_embedder, pseudo="majority").reward(make_group(answers))
    assert res.rewards[:3] == [1.0, 1.0, 1.0]
    assert res.diagnostics["pseudo_label"] == "pneumothorax"
    assert res.diagnostics["confidence"] == 0.75
    auto = HSRReward(table_embedder, reference="auto").reward(make_group(answers, label="effusion"))
    assert auto.rewards == [0.0, 0.0, 0.0, 1.0]


def test_hsr_label_mode_without_label_scores_zero() -> None:
    res = HSRReward(HashingEmbedder(), reference="label").reward(make_group(["x", "y"]))
    assert res.rewards == [0.0, 0.0]


def test_hsr_skip_low_confidence() -> None:
    g = make_group(["liver", "spleen", "kidney"])
    res = HSRReward(HashingEmbedder(), pseudo="majority", min_confidence=0.5).reward(g)
    assert res.rewards == [0.0, 0.0, 0.0] and res.diagnostics["skipped"] is True


@pytest.mark.parametrize(
    "kwargs",
    [{"w_f1": -1.0}, {"w_f1": 0.0, "w_embed": 0.0}, {"cap": 1.0}, {"floor": 0.95, "cap": 0.9}],
    ids=["negative-weight", "zero-weights", "cap-one", "floor-above-cap"],
)
def test_hsr_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        HSRConfig(**kwargs)


def test_hsr_bad_reference_mode() -> None:
    with pytest.raises(ConfigError, match="reference"):
        HSRReward(HashingEmbedder(), reference="gold")  # type: ignore[arg-type]
