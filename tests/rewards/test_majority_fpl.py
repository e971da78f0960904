from __future__ import annotations

import pytest

from medgym.errors import ConfigError
from medgym.rewards import FPLReward, HashingEmbedder, MajorityVoteReward, fpl_label, group_answers
from medgym.rewards.testing import make_group


@pytest.mark.parametrize(
    ("answers", "rewards", "label", "conf"),
    [(["yes", "Yes.", "no", "yes"], [1, 1, 0, 1], "yes", 0.75),
     (["yes", "no"], [0, 1], "no", 0.5),  # tie -> smallest normalised string
     (["", None, "x" * 5000, "liver"], [0, 0, 0, 1], "liver", 0.25),
     ([None, None], [0, 0], "", 0.0),
     (["CT"], [1], "computed tomography", 1.0),
     (["CT", "computed tomography", "MRI"], [1, 1, 0], "computed tomography", 2 / 3)],
    ids=["plain", "tie", "bad-answers", "all-empty", "group-of-one", "synonyms"],
)  # fmt: skip
def test_majority(answers: list[object], rewards: list[float], label: str, conf: float) -> None:
    res = MajorityVoteReward().reward(make_group(answers))
    assert res.rewards == [float(r) for r in rewards]
    assert res.diagnostics["pseudo_label_norm"] == label
    assert res.diagnostics["confidence"] == pytest.approx(conf)


def test_majority_option_letters_vote_with_text() -> None:
    g = make_group(["B", "oval", "(a)"], options=("round", "oval"))
    res = MajorityVoteReward().reward(g)
    assert res.rewards == [1.0, 1.0, 0.0]
    assert res.diagnostics["pseudo_label_norm"] == "oval"


def test_majority_skips_low_confidence() -> None:
    res = MajorityVoteReward(min_confidence=0.6).reward(
        make_group(["liver", "spleen", "liver", "kidney"])
    )
    assert res.rewards == [0.0] * 4
    assert res.parts["agree"] == [1.0, 0.0, 1.0, 0.0]
    assert res.diagnostics["skipped"] is True
    with pytest.raises(ConfigError, match="min_confidence"):
        MajorityVoteReward(min_confidence=2)


def test_fpl_picks_semantic_centre_over_plurality(table_embedder) -> None:  # type: ignore[no-untyped-def]
    # Plurality says "pneumothorax" (2 votes); the paraphrase cluster (3 answers) holds the centre.
    # Centroid = 2*pneumo + pleural + fluid + effusion = (2.86, 2.28, 0.436, 0); nearest: fluid.
    answers = ["pneumothorax", "pneumothorax", "pleural effusion", "fluid in pleural space",
               "effusion"]  # fmt: skip
    assert MajorityVoteReward().reward(make_group(answers)).diagnostics["pseudo_label"] == (
        "pneumothorax"
    )
    res = FPLReward(table_embedder, radius=0.8).reward(make_group(answers))
    assert res.diagnostics["pseudo_label"] == "fluid in pleural space"
    assert res.rewards == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert res.diagnostics["confidence"] == pytest.approx(0.6)
    sims = res.parts["similarity"]
    assert sims[0] == pytest.approx(0.28, abs=1e-3) and sims[2] == pytest.approx(0.96, abs=1e-3)
    assert sims[3] == 1.0 and sims[4] == pytest.approx(0.864, abs=1e-3)


def test_fpl_embeds_each_distinct_answer_once(table_embedder) -> None:  # type: ignore[no-untyped-def]
    answers = ["pneumothorax"] * 8 + ["pleural effusion"] * 8
    fpl_label(group_answers(answers), table_embedder)
    assert sorted(table_embedder.calls[0]) == ["pleural effusion", "pneumothorax"]


def test_fpl_edge_cases() -> None:
    emb = HashingEmbedder(dim=64)
    empty = FPLReward(emb).reward(make_group([None, "", 3]))
    assert empty.rewards == [0.0, 0.0, 0.0] and empty.diagnostics["pseudo_label"] == ""
    one = FPLReward(emb).reward(make_group(["liver"]))
    assert one.rewards == [1.0] and one.diagnostics["confidence"] == 1.0
    with pytest.raises(ConfigError, match="radius"):
        FPLReward(emb, radius=3)


def test_fpl_density_follows_the_mode(table_embedder) -> None:  # type: ignore[no-untyped-def]
    # Centroid = 3*pneumo + 2*pleural + 2*fluid = (3.92, 3.56, 0, 0): nearest is "fluid" (4.76 vs
    # pleural 3.92, pneumo 3.56). Density with radius 0.99 counts exact neighbours only:
    # pneumo 3 > pleural 2 = fluid 2, so it follows the mode.
    answers = ["pneumothorax"] * 3 + ["pleural effusion"] * 2 + ["fluid in pleural space"] * 2
    g = make_group(answers)
    centroid = FPLReward(table_embedder, radius=0.9).reward(g)
    assert centroid.diagnostics["pseudo_label"] == "fluid in pleural space"
    dense = FPLReward(table_embedder, radius=0.99, method="density").reward(g)
    assert dense.diagnostics["pseudo_label"] == "pneumothorax"
    with pytest.raises(ConfigError, match="method"):
        FPLReward(table_embedder, method="mode")  # type: ignore[arg-type]


def test_prefetch_warms_cache(table_embedder) -> None:  # type: ignore[no-untyped-def]
    from medgym.rewards.embedders import CachedEmbedder
    from medgym.rewards.fpl import prefetch_embeddings

    cached = CachedEmbedder(table_embedder)
    groups = [
        make_group(["pneumothorax", "effusion"]),
        make_group(["effusion", "pleural effusion"]),
    ]
    assert prefetch_embeddings(groups, cached) == 3
    for g in groups:
        FPLReward(cached).reward(g)
    assert len(table_embedder.calls) == 1
