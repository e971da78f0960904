"""A pixel-reading detector for the bundled zoom questions: sees only the pixels it is shown.

:class:`PixelReader` finds the findings of :mod:`medgym.data.synthetic_findings` the way a
radiologist's eye would: as patches of fine grain that stand out of the image's noise. It high-pass
filters the view, takes the local energy of what is left, marks where that energy is several
times the view's typical level, and groups the marks into findings: one large patch is a nodule
(its outline gives the shape), two or more small patches close together are a calcification
cluster (their number is the granule count).

It runs the same algorithm at every zoom. In the whole-image first view the grain of a finding
has been averaged away by the downsampling, so the reader sees nothing there, or only noise, and
its answers are guesses; in a zoomed view it reads the finding. It is the pixel-only policy of
:mod:`medgym.agents.scripted` and the check that the datasets really need zooming.

Example:
    >>> import numpy as np
    >>> PixelReader().find(np.zeros((64, 64, 3), dtype=np.uint8))
    []
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from medgym.core.bbox import BBox
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec
from medgym.data.synthetic_findings import CALCIFICATION, NODULE
from medgym.errors import ConfigError

__all__ = ["Detection", "PixelReader", "PixelReaderConfig"]


@dataclass(frozen=True, kw_only=True)
class PixelReaderConfig:
    """Knobs of :class:`PixelReader` (all in view pixels or ratios).

    Attributes:
        highpass_sigma: Gaussian sigma removed from the view: what is left is fine grain.
        energy_sigma: Gaussian sigma of the local energy of the grain.
        threshold: A pixel is marked where its energy exceeds this many times the background
            level (a low percentile of the view's energy).
        relative_threshold: ... and this share of the view's peak energy (its 99.5th
            percentile), so that a very strong finding does not bleed into its neighbours.
        background_percentile: Percentile of the energy taken as the background level.
        min_score: Findings whose mean energy ratio is below this are dropped as noise.
        min_area_fraction: Marks smaller than this share of the view are dropped.
        max_area_fraction: Marks larger than this share of the view are dropped: a finding is
            a small patch, not the grain of a whole organ.
        group_gap: Marks closer than this many times their size belong to one finding.
        granule_ratio: Parts at least this share of a group's largest part count as granules.
        spiculated_solidity: Below this solidity (area / convex hull area) a nodule is spiculated.
        irregular_solidity: Below this solidity a nodule is irregular.
        oval_aspect: At or above this axis ratio a nodule is oval.
    """

    highpass_sigma: float = 1.0
    energy_sigma: float = 2.0
    threshold: float = 3.0
    relative_threshold: float = 0.1
    background_percentile: float = 30.0
    min_score: float = 4.8
    min_area_fraction: float = 0.0015
    max_area_fraction: float = 0.3
    group_gap: float = 1.2
    granule_ratio: float = 0.25
    spiculated_solidity: float = 0.80
    irregular_solidity: float = 0.95
    oval_aspect: float = 1.45

    def __post_init__(self) -> None:
        for name in ("highpass_sigma", "energy_sigma", "threshold", "group_gap", "oval_aspect"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0; got {getattr(self, name)}")
        if not 0.0 < self.background_percentile < 100.0:
            raise ConfigError(
                f"background_percentile must be in (0, 100); got {self.background_percentile}"
            )


@dataclass(frozen=True)
class Detection:
    """One finding seen in a view.

    Attributes:
        bbox_px: Box in *view* pixels.
        score: Mean grain energy inside, in multiples of the view's background level.
        kind: ``"nodule"`` or ``"calcification"``.
        shape: Nodule shape (``round``, ``oval``, ``irregular``, ``spiculated``); ``"cluster"``
            for a calcification.
        granules: Number of separate patches (1 for a nodule).
        features: The measurements behind ``shape`` (solidity, aspect, area).
    """

    bbox_px: BBox
    score: float
    kind: str
    shape: str
    granules: int
    features: dict[str, float] = field(default_factory=dict)

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the box in view pixels."""
        return ((self.bbox_px[0] + self.bbox_px[2]) / 2, (self.bbox_px[1] + self.bbox_px[3]) / 2)


class PixelReader:
    """Finds small textured findings in rendered views and answers the bundled zoom questions.

    Args:
        config: Detector knobs; the defaults suit views from 0.8x to 4x native resolution.
    """

    def __init__(self, config: PixelReaderConfig | None = None) -> None:
        self.config = config or PixelReaderConfig()

    # ------------------------------------------------------------------ detection
    def energy(self, view_pixels: np.ndarray) -> np.ndarray:
        """Local fine-grain energy of a view, in multiples of its background level."""
        c = self.config
        pixels = np.asarray(view_pixels)
        if pixels.ndim == 3:
            gray = pixels.astype(np.float32).mean(axis=2)
        elif pixels.ndim == 2:
            gray = pixels.astype(np.float32)
        else:
            raise ConfigError(f"view pixels must be (H, W) or (H, W, 3); got {pixels.shape}")
        smooth = cv2.GaussianBlur(gray, (0, 0), c.highpass_sigma)
        hp = gray - smooth
        energy = cv2.GaussianBlur(hp * hp, (0, 0), c.energy_sigma)
        # The background level is taken where the display is not clipped: black air or white
        # bone carry no grain and would make any noise look like a finding.
        shown = (smooth > 16.0) & (smooth < 239.0)
        values = energy[shown] if shown.mean() > 0.05 else energy.reshape(-1)
        level = float(np.percentile(values, c.background_percentile))
        return energy / max(level, 1e-2)

    def find(self, view_pixels: np.ndarray) -> list[Detection]:
        """Detect findings in a view (``(H, W, 3)`` uint8), strongest first."""
        c = self.config
        ratio = self.energy(view_pixels)
        h, w = ratio.shape
        cut = max(c.threshold, c.relative_threshold * float(np.percentile(ratio, 99.5)))
        mask: np.ndarray = (ratio > cut).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_area = c.min_area_fraction * h * w
        max_area = c.max_area_fraction * h * w
        parts = [i for i in range(1, n) if min_area <= stats[i, cv2.CC_STAT_AREA] <= max_area]
        groups = _group(parts, stats, c.group_gap)
        out = [self._describe(group, labels, stats, ratio) for group in groups]
        out = [d for d in out if d.score >= c.min_score]
        out.sort(key=lambda d: d.score, reverse=True)
        return out

    def _describe(
        self, group: list[int], labels: np.ndarray, stats: np.ndarray, ratio: np.ndarray
    ) -> Detection:
        c = self.config
        areas = [int(stats[i, cv2.CC_STAT_AREA]) for i in group]
        biggest = max(areas)
        granules = sum(1 for a in areas if a >= c.granule_ratio * biggest)
        x1 = min(int(stats[i, cv2.CC_STAT_LEFT]) for i in group)
        y1 = min(int(stats[i, cv2.CC_STAT_TOP]) for i in group)
        x2 = max(int(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH]) for i in group)
        y2 = max(int(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT]) for i in group)
        region = np.isin(labels[y1:y2, x1:x2], group)
        score = float(ratio[y1:y2, x1:x2][region].mean())
        box = (float(x1), float(y1), float(x2), float(y2))
        if granules >= 2:
            return Detection(box, score, CALCIFICATION, "cluster", granules)
        main = group[areas.index(biggest)]
        shape, features = self._shape((labels[y1:y2, x1:x2] == main).astype(np.uint8))
        return Detection(box, score, NODULE, shape, 1, features)

    def _shape(self, mask: np.ndarray) -> tuple[str, dict[str, float]]:
        c = self.config
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        area = float(cv2.contourArea(contour))
        hull = float(cv2.contourArea(cv2.convexHull(contour)))
        solidity = area / hull if hull > 0 else 1.0
        if len(contour) >= 5:
            (_, _), (a, b), _ = cv2.fitEllipse(contour)
            aspect = max(a, b) / max(min(a, b), 1e-6)
        else:
            aspect = 1.0
        features = {"solidity": solidity, "aspect": aspect, "area": area}
        if solidity < c.spiculated_solidity:
            return "spiculated", features
        if solidity < c.irregular_solidity:
            return "irregular", features
        if aspect >= c.oval_aspect:
            return "oval", features
        return "round", features

    # ------------------------------------------------------------------ answering
    def answer(self, sample: Sample, view_pixels: np.ndarray, view: ViewSpec) -> str:
        """Answer a bundled zoom question (``sample.meta["query"]``) from one view's pixels.

        Reads only the question's *where* and *what* (family, target, region), never the answer,
        the evidence or the findings. With nothing seen it falls back to the first option, so
        blind answers are chance-level on the balanced datasets.

        Raises:
            ConfigError: The sample has no ``meta["query"]`` (not a bundled zoom question).
        """
        query = sample.meta.get("query")
        if not isinstance(query, dict) or "family" not in query:
            raise ConfigError(
                f"sample {sample.id} has no meta['query']; the pixel reader answers only the "
                "zoom questions of the synthetic and realworld datasets"
            )
        family = str(query["family"])
        region = _as_box(query.get("region_px"))
        seen = [(d, view.view_to_original(d.bbox_px)) for d in self.find(view_pixels)]
        inside = [(d, b) for d, b in seen if region is None or _centre_in(b, region)]
        fallback = sample.options[0] if sample.options else _DEFAULTS.get(family, "")
        if family in ("presence", "zone_presence"):
            return "yes" if any(d.kind == NODULE for d, _ in inside) else "no"
        if family == "count":
            found = [d for d, _ in inside if d.kind == CALCIFICATION]
            return str(found[0].granules) if found else fallback
        if family == "shape":
            found = [d for d, _ in inside if d.kind == NODULE]
            return found[0].shape if found else fallback
        if family == "kind":
            return inside[0][0].kind if inside else fallback
        if family == "side":
            width = float(query.get("image_size", [view.bbox_px[2]])[0])
            boxes = [b for d, b in inside if d.kind == NODULE]
            if not boxes:
                return fallback
            return "left" if (boxes[0][0] + boxes[0][2]) / 2 < width / 2 else "right"
        return fallback

    def propose(self, sample: Sample, view_pixels: np.ndarray, view: ViewSpec) -> BBox | None:
        """Where to zoom next, as a box in the view's pixels (``None``: nothing better to show).

        When the question names a region that fills less than half of the view, the region
        (findings are too fine to pick out before zooming in on it); otherwise the strongest
        detection inside the region, grown to three times its size. Works at any zoom: call it
        again on the zoomed view to zoom further.
        """
        query = sample.meta.get("query")
        region = _as_box(query.get("region_px")) if isinstance(query, dict) else None
        w, h = view.out_size
        if region is not None:
            vb = view.original_to_view(region)
            clipped = (max(vb[0], 0.0), max(vb[1], 0.0), min(vb[2], float(w)), min(vb[3], float(h)))
            area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
            if clipped[2] > clipped[0] and clipped[3] > clipped[1] and area < 0.5 * w * h:
                return clipped
        for d in self.find(view_pixels):
            if region is None or _centre_in(view.view_to_original(d.bbox_px), region):
                return _grow_view(d.bbox_px, 1.0, view.out_size)
        return None


_DEFAULTS = {
    "presence": "no",
    "zone_presence": "no",
    "count": "2",
    "shape": "round",
    "kind": NODULE,
    "side": "left",
}


def _as_box(value: object) -> BBox | None:
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return (float(value[0]), float(value[1]), float(value[2]), float(value[3]))
    return None


def _centre_in(box: BBox, region: BBox) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= x <= region[2] and region[1] <= y <= region[3]


def _grow_view(box: BBox, frac: float, size: tuple[int, int]) -> BBox:
    w, h = box[2] - box[0], box[3] - box[1]
    side = max(w, h) * (1 + 2 * frac)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return (
        max(0.0, cx - side / 2),
        max(0.0, cy - side / 2),
        min(float(size[0]), cx + side / 2),
        min(float(size[1]), cy + side / 2),
    )


def _group(parts: list[int], stats: np.ndarray, gap: float) -> list[list[int]]:
    """Union parts closer (box to box) than ``gap`` times the smaller part's size."""
    boxes = {}
    for i in parts:
        x, y = float(stats[i, cv2.CC_STAT_LEFT]), float(stats[i, cv2.CC_STAT_TOP])
        w, h = float(stats[i, cv2.CC_STAT_WIDTH]), float(stats[i, cv2.CC_STAT_HEIGHT])
        boxes[i] = (x, y, x + w, y + h, math.sqrt(w * h))
    parent = {i: i for i in parts}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k, a in enumerate(parts):
        for b in parts[k + 1 :]:
            ba, bb = boxes[a], boxes[b]
            dx = max(0.0, max(ba[0], bb[0]) - min(ba[2], bb[2]))
            dy = max(0.0, max(ba[1], bb[1]) - min(ba[3], bb[3]))
            if math.hypot(dx, dy) <= gap * min(ba[4], bb[4]):
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in parts:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())
