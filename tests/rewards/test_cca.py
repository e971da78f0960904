from __future__ import annotations

import numpy as np
import pytest

from medgym.agents import GroupRunner, OraclePolicy, RandomZoomPolicy
from medgym.data import load
from medgym.errors import ConfigError
from medgym.rewards import CCAReward
from medgym.rewards.cca import footprint_keys, footprints
from medgym.rewards.testing import make_group

TL = (0, (0.0, 0.0, 256.0, 256.0))
BR = (0, (256.0, 256.0, 512.0, 512.0))


def test_cca_hand_computed_consensus() -> None:
    g = make_group(["yes", "yes", "yes", "no"], [[TL], [TL], [BR], [TL]], label="yes")
    res = CCAReward().reward(g)
    assert res.rewards == [1.0, 1.0, 0.5, 0.0]
    assert res.parts["iou"][:3] == [1.0, 1.0, 0.0]
    assert res.diagnostics["tplus"] == [0, 1, 2]
    assert res.diagnostics["consensus_boxes"] == [{"image_index": 0, "bbox_px": TL[1]}]


def test_cca_partial_overlap_iou() -> None:
    # Consensus = TL; a box covering TL plus the top-right quadrant has IoU 0.5 -> not > 0.5.
    wide = (0, (0.0, 0.0, 512.0, 256.0))
    g = make_group(["yes"] * 4, [[TL], [TL], [TL], [wide]], label="yes")
    res = CCAReward().reward(g)
    assert res.parts["iou"][3] == pytest.approx(0.5)
    assert res.rewards == [1.0, 1.0, 1.0, 0.5]
    assert CCAReward(iou_threshold=0.4).reward(g).rewards[3] == 1.0


@pytest.mark.parametrize(
    ("answers", "regions", "kwargs", "rewards"),
    [(["no", "no"], [[TL], [TL]], {}, [0.0, 0.0]),
     (["yes", "no"], [[TL], [TL]], {}, [1.0, 0.0]),
     (["yes", "no"], [[TL], [TL]], {"min_voters": 2}, [0.5, 0.0]),
     (["yes", "yes"], [[TL], []], {}, [1.0, 0.0]),
     (["yes", "yes"], [[TL], []], {"no_zoom": 0.25}, [1.0, 0.25]),
     (["yes", "yes"], [[], []], {}, [0.0, 0.0]),
     (["yes", "yes"], [[TL], [BR]], {}, [0.5, 0.5]),
     (["yes", "yes", "yes"], [[TL], [TL, BR], [BR]], {}, [0.5, 1.0, 0.5]),
     (["yes", "yes"], [[(0, (0.0, 0.0, 512.0, 512.0))], [TL]], {}, [0.0, 1.0])],
    ids=["empty-tplus", "one-tplus", "one-tplus-min-voters", "tplus-never-zoomed",
         "no-zoom-reward", "nobody-zoomed", "two-disjoint", "union-of-boxes", "full-frame-ignored"],
)  # fmt: skip
def test_cca_edge_cases(
    answers: list[str], regions: list[list], kwargs: dict, rewards: list[float]
) -> None:
    res = CCAReward(**kwargs).reward(make_group(answers, regions, label="yes"))
    assert res.rewards == rewards
    assert all(np.isfinite(res.rewards))


def test_cca_multi_image() -> None:
    sizes = ((512, 512), (256, 128))
    small = (1, (0.0, 0.0, 128.0, 64.0))
    g = make_group(["a1"] * 3, [[small], [small], [TL]], label="a1", image_sizes=sizes)
    res = CCAReward().reward(g)
    assert res.rewards == [1.0, 1.0, 0.5]
    assert res.diagnostics["consensus_boxes"] == [{"image_index": 1, "bbox_px": small[1]}]


def test_footprint_tiny_box_and_failed_calls() -> None:
    g = make_group(["yes", "yes"], [[(0, (10.0, 10.0, 11.0, 11.0))], []], label="yes")
    g.trajectories[1] = g.trajectories[1].model_copy()
    masks = footprints(g, grid=64)
    assert masks.shape == (2, 1, 64, 64)
    assert masks[0].sum() == 1 and masks[0, 0, 1, 1]
    assert masks[1].sum() == 0


def test_failed_calls_do_not_count() -> None:
    from medgym.rewards.testing import make_trajectory

    g = make_group(["yes", "yes"], [[TL], []], label="yes")
    g.trajectories[1] = make_trajectory("yes", [], index=1, failed_calls=3)
    assert CCAReward().reward(g).diagnostics["zoomed"] == [True, False]


def test_positive_modes(table_embedder) -> None:  # type: ignore[no-untyped-def]
    unlabelled = make_group(["liver", "liver", "spleen"], [[TL], [TL], [TL]])
    auto = CCAReward().reward(unlabelled)
    assert auto.diagnostics["positives"] == "pseudo" and auto.rewards == [1.0, 1.0, 0.0]
    no_label = CCAReward(positives="label").reward(unlabelled)
    assert no_label.rewards == [0.0, 0.0, 0.0] and no_label.diagnostics["reason"] == "no label"
    g = make_group(["pleural effusion", "effusion", "pneumothorax"], [[TL], [TL], [TL]],
                   label="pleural effusion")  # fmt: skip
    hsr = CCAReward(positives="hsr", hsr_threshold=0.7, embedder=table_embedder).reward(g)
    assert hsr.diagnostics["tplus"] == [0, 1]


def test_cca_rejects_bad_config_and_lengths() -> None:
    with pytest.raises(ConfigError, match="grid"):
        CCAReward(grid=2)
    with pytest.raises(ConfigError, match="positives"):
        CCAReward(positives="gold")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positives for a group"):
        CCAReward().reward_with_positives(make_group(["a"]), [True, False])


def test_cca_on_runner_groups() -> None:
    samples = load("synthetic", num_samples=4)
    oracle = GroupRunner(n=4, progress=False).run(samples, OraclePolicy())
    for g in oracle:
        res = CCAReward().reward(g)
        if g.sample.evidence:
            assert res.rewards == [1.0] * 4
    random_groups = GroupRunner(n=4, progress=False).run(samples, RandomZoomPolicy())
    for g in random_groups:
        res = CCAReward().reward(g)
        assert set(res.rewards) <= {0.0, 0.5, 1.0}
        assert len(res.rewards) == 4


def _on_slices(group, slices):  # type: ignore[no-untyped-def]
    """Put rollout i's zoom calls on slice ``slices[i]`` of a volume (None: no slice)."""
    for t, s in zip(group.trajectories, slices, strict=True):
        for turn in t.turns:
            for call in turn.tool_calls:
                call.slice_index = s
    return group


def test_volume_footprints_are_slice_range_times_box() -> None:
    """Issue 17: the same box on nearby slices agrees, on a distant slice it does not."""
    box = (0, (100.0, 100.0, 200.0, 200.0))
    g = _on_slices(make_group(["yes"] * 3, [[box]] * 3, label="yes"), [10, 11, 25])
    keys = footprint_keys(g)
    assert keys[0] == (0, None) and (0, 8) in keys and (0, 13) in keys and (0, 27) in keys
    masks = footprints(g, grid=64)
    flat = masks.reshape(3, -1)
    inter01 = (flat[0] & flat[1]).sum() / (flat[0] | flat[1]).sum()
    assert inter01 == pytest.approx(4 / 6)  # slices 8-12 and 9-13 share four of six
    assert not (flat[0] & flat[2]).any()  # 8-12 and 23-27 share nothing
    res = CCAReward(iou_threshold=0.5).reward(g)
    assert res.rewards[0] == res.rewards[1] > res.rewards[2]
    assert {b["slice_index"] for b in res.diagnostics["consensus_boxes"]} == {9, 10, 11, 12}


def test_an_overview_covers_every_slice_it_tiles() -> None:
    """Overviews of the same range agree; one of another range does not (issue 17).

    The region is a quarter of the slice: a full-frame overview, like any full-frame view, is
    no choice of where to look and counts for nothing.
    """
    quarter = (0, (0.0, 0.0, 256.0, 256.0))
    g = make_group(["yes"] * 3, [[quarter]] * 3, label="yes")
    tiles = [(0, 4, 8, 12), (0, 4, 8, 12), (40, 44, 48, 52)]
    for t, montage in zip(g.trajectories, tiles, strict=True):
        (call,) = [c for turn in t.turns for c in turn.tool_calls]
        call.name, call.slice_index = "overview", montage[0]
        t.views[call.view_index] = t.views[call.view_index].model_copy(
            update={"montage": montage, "slice_index": montage[0], "tool": "overview"}
        )
    keys = footprint_keys(g)
    assert {(0, 2), (0, 14), (0, 38), (0, 54)} <= set(keys)  # each tile, +-2 slices
    flat = footprints(g, grid=32).reshape(3, -1)
    assert (flat[0] == flat[1]).all() and not (flat[0] & flat[2]).any()
    res = CCAReward(iou_threshold=0.5).reward(g)
    assert res.rewards[0] == res.rewards[1] > res.rewards[2]


def test_2d_footprints_keep_one_raster_per_image() -> None:
    g = make_group(["yes", "yes"], [[TL], [TL]], label="yes")
    assert footprint_keys(g) == [(0, None)]
    assert footprints(g).shape == (2, 1, 64, 64)
