"""The pixel reader, and the property the bundled zoom questions are built for: zooming is needed.

In the whole-image first view (448 px) the reader must do no better than chance (+10 points);
on a crop of the evidence box it must be right at least 90% of the time. A second, detector-free
check compares the fine-grain energy inside finding boxes with empty boxes: no difference in the
first view, a clear one once zoomed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medgym.core.bbox import clamp
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec, full_view, render
from medgym.data import clear_image_cache, load, load_image
from medgym.data.detector import PixelReader, PixelReaderConfig
from medgym.data.synthetic_anatomy import Anatomy
from medgym.data.synthetic_findings import FindingSpec, draw_findings
from medgym.data.synthetic_questions import FAMILY_OPTIONS
from medgym.errors import ConfigError
from medgym.tools.base import fit_size

N_SAMPLES = 100
MARGIN = 0.5


def _evidence_view(sample: Sample, width: int, height: int, margin: float = MARGIN) -> ViewSpec:
    boxes = [e.bbox_px for e in sample.evidence]
    x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    w, h = x2 - x1, y2 - y1
    box = clamp((x1 - margin * w, y1 - margin * h, x2 + margin * w, y2 + margin * h), width, height)
    assert box is not None
    return ViewSpec(bbox_px=box, out_size=fit_size(box[2] - box[0], box[3] - box[1], upscale=True))


@pytest.fixture(scope="module")
def rendered():
    """Each sample with its first view and its evidence view, rendered once."""
    out = []
    for s in load("synthetic", split="test", num_samples=N_SAMPLES):
        image = load_image(s.images[0])
        first = full_view(image, (448, 448))
        zoom = _evidence_view(s, image.width, image.height)
        out.append((s, image, first, render(image, first), zoom, render(image, zoom)))
        clear_image_cache()
    return out


def _accuracy(rendered, which: str) -> tuple[float, float]:
    reader = PixelReader()
    right, chance = 0, 0.0
    for s, _, first, first_px, zoom, zoom_px in rendered:
        view, px = (first, first_px) if which == "first" else (zoom, zoom_px)
        right += reader.answer(s, px, view) == s.answer
        chance += 1.0 / len(FAMILY_OPTIONS[s.question_type])
    return right / len(rendered), chance / len(rendered)


def test_first_view_is_at_chance(rendered):
    accuracy, chance = _accuracy(rendered, "first")
    assert accuracy <= chance + 0.10, (accuracy, chance)


def test_evidence_crop_is_read_correctly(rendered):
    accuracy, _ = _accuracy(rendered, "zoom")
    assert accuracy >= 0.90, accuracy


def _grain(px: np.ndarray) -> np.ndarray:
    import cv2

    gray = px.astype(np.float32).mean(axis=2)
    hp = gray - cv2.GaussianBlur(gray, (0, 0), 1.0)
    return hp * hp


def _ring_ratio(energy: np.ndarray, box) -> float:
    """Mean energy inside ``box`` over the mean energy of a ring one box-size wide around it."""
    x1, y1, x2, y2 = (round(v) for v in box)
    w, h = x2 - x1, y2 - y1
    ring = np.zeros(energy.shape, dtype=bool)
    ring[max(0, y1 - h) : y2 + h, max(0, x1 - w) : x2 + w] = True
    ring[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = False
    return float(energy[y1:y2, x1:x2].mean() / energy[ring].mean())


def test_findings_leave_no_trace_in_the_first_view_and_a_clear_one_zoomed(rendered):
    """Detector-free: grain energy of finding boxes against empty boxes and their surroundings."""
    rng = np.random.default_rng(0)
    ranks, first_ratios, zoom_ratios = [], [], []
    for s, image, first, first_px, zoom, zoom_px in rendered[:60]:
        if s.question_type == "presence" and s.answer == "no":
            continue
        anatomy = Anatomy.from_seed(s.meta["image_kind"], image.width, s.meta["image_seed"])
        findings = [tuple(f["bbox_px"]) for f in s.meta["findings"]]
        target = s.evidence[0].bbox_px
        energy = _grain(first_px)
        bx = first.original_to_view(target)
        first_ratios.append(_ring_ratio(energy, bx))
        zoom_ratios.append(_ring_ratio(_grain(zoom_px), zoom.original_to_view(target)))
        x1, y1, x2, y2 = (round(v) for v in bx)
        w, h = x2 - x1, y2 - y1
        inside, others = energy[y1:y2, x1:x2].mean(), []
        for _ in range(400):  # empty boxes of the same size on tissue where findings may go
            x, y = int(rng.integers(0, 448 - w)), int(rng.integers(0, 448 - h))
            box = first.view_to_original((x, y, x + w, y + h))
            hits = any(
                box[0] < f[2] and f[0] < box[2] and box[1] < f[3] and f[1] < box[3]
                for f in findings
            )
            if not hits and anatomy.allowed(box):
                others.append(energy[y : y + h, x : x + w].mean())
            if len(others) == 15:
                break
        if others:
            ranks.append(float(np.mean(inside > np.array(others))))
    assert len(ranks) >= 30
    assert np.mean(ranks) < 0.62, np.mean(ranks)  # 0.5: no trace at all
    assert np.median(first_ratios) < 1.3, np.median(first_ratios)
    assert np.mean(np.array(zoom_ratios) > 2.0) >= 0.95, sorted(zoom_ratios)[:5]


def _patch_with(spec: FindingSpec, size: int = 448, noise: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    canvas = (120.0 + noise * rng.standard_normal((size, size))).astype(np.float32)
    draw_findings(canvas, [spec])
    gray = np.clip(canvas, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _spec(**kw) -> FindingSpec:
    base = dict(kind="nodule", shape="round", count=1, cx=224, cy=224, size=200, angle=20)
    return FindingSpec(**{**base, "amp": 30.0, "seed": 5, **kw})


@pytest.mark.parametrize("shape", ["round", "oval", "irregular", "spiculated"])
def test_reads_nodule_shapes(shape):
    found = PixelReader().find(_patch_with(_spec(shape=shape)))
    assert len(found) == 1
    assert (found[0].kind, found[0].shape) == ("nodule", shape)


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_counts_granules(count):
    spec = _spec(kind="calcification", shape="cluster", count=count, seed=count)
    found = PixelReader().find(_patch_with(spec))
    assert len(found) == 1
    assert (found[0].kind, found[0].granules) == ("calcification", count)


def test_detection_box_matches_the_finding():
    spec = _spec(shape="oval")
    (d,) = PixelReader().find(_patch_with(spec))
    x1, y1, x2, y2 = spec.bbox_px
    assert abs(d.bbox_px[0] - x1) < 12 and abs(d.bbox_px[2] - x2) < 12
    assert abs(d.bbox_px[1] - y1) < 12 and abs(d.bbox_px[3] - y2) < 12


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((64, 64, 3), np.uint8),
        np.full((100, 50, 3), 255, np.uint8),
        np.random.default_rng(0).integers(90, 110, (300, 300, 3)).astype(np.uint8),
        np.zeros((1, 1, 3), np.uint8),
    ],
    ids=["black", "white", "plain-noise", "one-pixel"],
)
def test_sees_nothing_where_there_is_nothing(pixels):
    assert PixelReader().find(pixels) == []


@given(arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48), st.just(3))))
def test_any_image_in_no_crash_out(pixels):
    found = PixelReader().find(pixels)
    assert all(0 <= d.bbox_px[0] < d.bbox_px[2] <= pixels.shape[1] for d in found)


def test_answer_needs_a_query():
    sample = Sample(id="x", images=({"uri": "a.png"},), question="What?")
    view = ViewSpec(bbox_px=(0, 0, 10, 10), out_size=(10, 10))
    with pytest.raises(ConfigError, match="meta\\['query'\\]"):
        PixelReader().answer(sample, np.zeros((10, 10, 3), np.uint8), view)


def test_propose_zooms_on_a_small_region_then_on_the_finding(rendered):
    reader = PixelReader()
    s, image, first, first_px, _, _ = next(r for r in rendered if r[0].question_type == "shape")
    box = reader.propose(s, first_px, first)
    assert box is not None
    region = first.original_to_view(tuple(s.meta["query"]["region_px"]))
    assert box == pytest.approx(region)
    original = first.view_to_original(box)
    zoom = ViewSpec(bbox_px=original, out_size=fit_size(*zoom_size(original), upscale=True))
    second = reader.propose(s, render(image, zoom), zoom)
    assert second is not None
    x1, y1, x2, y2 = zoom.view_to_original(second)
    ex1, ey1, ex2, ey2 = s.evidence[0].bbox_px
    assert x1 <= ex1 + 20 and y1 <= ey1 + 20 and x2 >= ex2 - 20 and y2 >= ey2 - 20


def zoom_size(box):
    return (box[2] - box[0], box[3] - box[1])


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 0}, {"highpass_sigma": -1}, {"background_percentile": 100}],
    ids=["zero-threshold", "negative-sigma", "percentile-100"],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ConfigError):
        PixelReaderConfig(**kwargs)
