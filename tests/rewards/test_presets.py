from __future__ import annotations

import pytest

from medgym.agents import GroupRunner, OraclePolicy
from medgym.data import load
from medgym.rewards import HashingEmbedder, MediXR1Reward, make_group_reward
from medgym.rewards.testing import make_group

TL = (0, (0.0, 0.0, 256.0, 256.0))
BR = (0, (256.0, 256.0, 512.0, 512.0))


def test_medvr_formula() -> None:
    g = make_group(["yes", "yes", "yes", "no"], [[TL], [TL], [BR], [TL]], label="yes")
    res = make_group_reward("medvr").reward(g)
    # acc + format + 1[acc > 0] * CCA
    assert res.rewards == [3.0, 3.0, 2.5, 1.0]
    assert res.parts["tool"] == [1.0, 1.0, 0.5, 0.0]


def test_deepeyes_formula() -> None:
    g = make_group(["yes", "yes", "no"], [[TL], [], [TL]], label="yes")
    res = make_group_reward("deepeyes").reward(g)
    assert res.rewards == pytest.approx([0.8 + 0.2 + 1.2, 0.8 + 0.2, 0.2])


def test_label_free_preset_needs_no_label(table_embedder) -> None:  # type: ignore[no-untyped-def]
    answers = ["pneumothorax", "pneumothorax", "pneumothorax", "effusion"]
    g = make_group(answers, [[TL], [TL], [BR], [TL]])
    res = make_group_reward("label_free", embedder=table_embedder).reward(g)
    assert res.parts["accuracy"] == [1.0, 1.0, 1.0, 0.0]
    assert res.parts["tool"] == [1.0, 1.0, 0.5, 0.0]
    assert res.rewards == [3.0, 3.0, 2.5, 1.0]
    skip = make_group_reward("label_free", embedder=table_embedder, min_confidence=0.9)
    assert skip.reward(g).diagnostics["skipped"] is True


def test_medix_r1_weights() -> None:
    text = "<modality>CT</modality><think>x</think><answer>{}</answer>"
    g = make_group(["computed tomography", "MRI", "c"], label="CT", modality="CT")
    for t, a in zip(g.trajectories, ["computed tomography", "MRI", "c"], strict=True):
        t.turns[-1].action = text.format(a)
    res = MediXR1Reward(embedder=HashingEmbedder(dim=64)).reward(g)
    assert res.parts["judge"] == [1.0, 0.0, 0.0]
    assert res.parts["embed"] == [1.0, 0.0, 0.0]
    assert res.parts["modality"] == [1.0, 1.0, 1.0]
    assert res.parts["format"] == [1.0, 1.0, 1.0]
    assert res.rewards[0] == pytest.approx(1.0)
    assert res.rewards[1] == pytest.approx(0.9 * 0.05 + 0.1)


def test_presets_on_oracle_groups() -> None:
    groups = GroupRunner(n=3, progress=False).run(load("synthetic", num_samples=3), OraclePolicy())
    for g in groups:
        res = make_group_reward("medvr").reward(g)
        assert all(r >= 1.0 for r in res.rewards)  # oracle answers right
