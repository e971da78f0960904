from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.core.images import ImageRef
from medgym.core.sample import Evidence, Sample
from medgym.core.trajectory import Group, ToolCallRecord, Trajectory, Turn
from medgym.eval.metrics import (
    episode_record,
    group_metrics,
    headline_metrics,
    pass_at_k,
    sample_record,
    zoom_iou,
)


def _sample(**kw: object) -> Sample:
    base = {
        "id": "s1", "images": (ImageRef(uri="a.png"),), "question": "Is there a nodule?",
        "answer": "yes", "answer_type": "closed", "options": ("yes", "no"), "modality": "CT",
    }  # fmt: skip
    base.update(kw)
    return Sample(**base)  # type: ignore[arg-type]


def _traj(
    i: int, answer: str | None, boxes: tuple = (), entropies: list | None = None
) -> Trajectory:
    calls = [ToolCallRecord(name="zoom_in", ok=True, bbox_px=b, image_index=0) for b in boxes]
    turns = [Turn(index=0, action="x", tool_calls=calls, token_entropies=entropies)]
    return Trajectory(
        id=f"s1#{i}", sample_id="s1", turns=turns, answer=answer,
        metrics={"tool_calls": float(len(calls))},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(4, 0, 1, 0.0), (4, 4, 1, 1.0), (4, 1, 1, 0.25), (4, 1, 4, 1.0), (4, 2, 2, 1 - 1 / 6)],
    ids=["none-right", "all-right", "one-of-four-k1", "one-of-four-k4", "two-of-four-k2"],
)
def test_pass_at_k_known_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@given(
    st.integers(1, 7).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n)))
)
def test_pass_at_k_matches_enumeration(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(outcomes[i] for i in sub) for sub in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_pass_at_k_out_of_range_is_nan() -> None:
    assert math.isnan(pass_at_k(2, 1, 3))


def test_zoom_iou_best_region_against_evidence() -> None:
    sample = _sample(evidence=(Evidence(bbox_px=(0, 0, 10, 10)),))
    traj = _traj(0, "yes", boxes=((50, 50, 60, 60), (0, 0, 10, 20)))
    assert zoom_iou(traj, Group(id="s1", sample=sample, trajectories=[traj])) == pytest.approx(0.5)
    no_zoom = _traj(1, "yes")
    assert zoom_iou(no_zoom, Group(id="s1", sample=sample, trajectories=[no_zoom])) is None
    no_evidence = Group(id="s1", sample=_sample(), trajectories=[traj])
    assert zoom_iou(traj, no_evidence) is None


def test_episode_record_scores_closed_and_open() -> None:
    closed = Group(id="s1", sample=_sample(), trajectories=[_traj(0, "B")])
    rec = episode_record(closed.trajectories[0], closed)
    assert rec["correct"] == 0.0 and rec["recall"] is None  # B = "no"
    open_ = _sample(answer="left upper lobe", answer_type="open", options=())
    g = Group(id="s1", sample=open_, trajectories=[_traj(0, "nodule in left upper lobe")])
    rec = episode_record(g.trajectories[0], g)
    assert rec["recall"] == 1.0 and rec["f1"] == pytest.approx(0.75) and rec["correct"] == 1.0


def test_sample_record_majority_and_pseudo_label() -> None:
    trajs = [_traj(0, "yes"), _traj(1, "no"), _traj(2, "yes"), _traj(3, None)]
    rec = sample_record(Group(id="s1", sample=_sample(), trajectories=trajs))
    assert rec["correct"] == 2 and rec["pass@1"] == 0.5
    assert rec["majority_correct"] == 1.0 and rec["pseudo_correct"] == 1.0
    assert rec["pseudo_confidence"] == 0.5
    wrong = [_traj(0, "no"), _traj(1, "no"), _traj(2, "yes")]
    rec = sample_record(Group(id="s1", sample=_sample(), trajectories=wrong), pseudo="fpl")
    assert rec["majority_correct"] == 0.0 and rec["pseudo_label"] == "no"


def test_unlabelled_samples_only_count_where_labels_are_not_needed() -> None:
    g = Group(
        id="s1", sample=_sample(answer=None), trajectories=[_traj(0, "yes", boxes=((0, 0, 5, 5),))]
    )
    eps = [episode_record(t, g) for t in g.trajectories]
    metrics = headline_metrics(eps, [sample_record(g)], resamples=50)
    assert "accuracy" not in metrics and "majority_accuracy" not in metrics
    assert metrics["tool_calls_per_episode"]["value"] == 1.0
    assert metrics["pseudo_label_confidence"]["value"] == 1.0


def test_group_metrics_split_by_modality() -> None:
    ct = Group(id="a", sample=_sample(id="a"), trajectories=[_traj(0, "yes")])
    mr = Group(id="b", sample=_sample(id="b", modality="MRI"), trajectories=[_traj(0, "no")])
    eps = [episode_record(g.trajectories[0], g) for g in (ct, mr)]
    by = group_metrics(eps, resamples=50)["modality"]
    assert by["CT"]["value"] == 1.0 and by["MRI"]["value"] == 0.0
