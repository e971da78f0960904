"""CCA (MedVR): reward a rollout's zooms by their agreement with the successful rollouts' consensus.

Footprint: the union of a rollout's executed zoom boxes (original pixels), rasterised on a fixed
``grid x grid`` raster per source image. Successful set T+: rollouts judged right (see
``positives``). Consensus: cells covered by more than half of the T+ rollouts that zoomed. Tool
reward of a T+ rollout that zoomed: ``high`` if IoU(footprint, consensus) > ``iou_threshold``
else ``low``; every rollout outside T+ gets 0.

Choices where the paper is silent (all knobs):

- T+ rollouts that never zoomed get ``no_zoom`` (default 0: only calls that returned an image
  count) and do not vote, so the majority threshold is half of the T+ rollouts that zoomed.
- ``|T+| = 0``: nobody gets tool reward. One T+ zoomer: the consensus is its own footprint, so
  it gets ``high`` (set ``min_voters=2`` to pay ``low`` until at least two agree).
- Several images: one raster per image; IoU pools the cells of all images.
- Volumes: a region on slice ``s`` covers slices ``s - slice_tolerance .. s + slice_tolerance``
  (a slice range x box), one raster per (image, slice), so two zooms on the same spot of
  distant slices do not agree while zooms a slice or two apart on one nodule do. Regions with
  no slice (2D images, a volume's first, middle-slice view) share one raster per image.
- Boxes covering (almost) the whole image, such as a window call on the first view, say nothing
  about where the rollout looked and are ignored (``full_frame``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np

from medgym.core.answers import closed_match, resolve_option
from medgym.core.trajectory import Group, Trajectory
from medgym.errors import ConfigError
from medgym.rewards.embedders import Embedder
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.hsr import HSRConfig, hsr_scores
from medgym.rewards.pseudo import group_answers, majority_label

__all__ = ["CCAReward", "consensus_boxes", "footprint_keys", "footprints", "image_sizes"]

Key = tuple[int, int | None]
"""A footprint raster: ``(image_index, slice)``; ``slice`` None for 2D regions."""

Positives = Literal["auto", "label", "pseudo", "hsr"]


def image_sizes(group: Group) -> list[tuple[float, float]]:
    """``(width, height)`` in original pixels of each sample image, from the first views.

    Falls back to the far corner of every region seen on that image when a trajectory carries
    no first view (hand-built records).
    """
    k_images = len(group.sample.images)
    sizes: list[tuple[float, float] | None] = [None] * k_images
    for t in group.trajectories:
        for v in t.views:
            first = v.parent is None and v.tool is None and v.image_index < k_images
            if first and sizes[v.image_index] is None:
                sizes[v.image_index] = (v.bbox_px[2], v.bbox_px[3])
        if all(s is not None for s in sizes):
            break
    out = []
    for k, s in enumerate(sizes):
        if s is None:
            corners = [(b[2], b[3]) for t in group.trajectories for i, b in t.executed_regions
                       if i == k]  # fmt: skip
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            s = (max(xs, default=1.0), max(ys, default=1.0))
        out.append((max(float(s[0]), 1e-6), max(float(s[1]), 1e-6)))
    return out


def _regions(
    t: Trajectory, tools: frozenset[str] | None
) -> list[tuple[int, int | None, tuple[float, ...]]]:
    """``(image, slice, box)`` of every executed call that returned an image.

    A region of a coronal or sagittal reformat becomes the axial boxes it crosses (one voxel
    thick at the plane's row or column, on each slice it spans), so footprints in any plane
    land on the same per-slice rasters. ``set_plane``'s own view is a whole plane, no choice
    of where to look, and is left out as a full-frame view is. An ``overview`` covers its
    region on every slice (or plane) it tiles, so overviews of different ranges disagree (one
    of the full frame, like any full-frame view, counts for nothing).
    """
    out: list[tuple[int, int | None, tuple[float, ...]]] = []
    for turn in t.turns:
        for c in turn.tool_calls:
            if not (c.ok and c.view_index is not None and c.bbox_px is not None):
                continue
            if tools is not None and c.name not in tools:
                continue
            k = c.image_index or 0
            view = t.views[c.view_index] if c.view_index < len(t.views) else None
            slices = view.montage if view is not None and view.montage else (c.slice_index,)
            for index in slices:
                if c.reformat is None:
                    out.append((k, index, c.bbox_px))
                elif c.name != "set_plane" and index is not None:
                    out.extend((k, s, b) for s, b in _axial_boxes(c.reformat, index, c.bbox_px))
    return out


def _axial_boxes(
    reformat: str, fixed: int, box: tuple[float, ...]
) -> list[tuple[int, tuple[float, ...]]]:
    """A reformat's box ``(along, slice_1, along_2, slice_2)`` as ``(slice, axial box)`` pairs."""
    a1, s1, a2, s2 = box
    f1, f2 = float(fixed), float(fixed + 1)
    axial = (a1, f1, a2, f2) if reformat == "coronal" else (f1, a1, f2, a2)
    return [(s, axial) for s in range(max(0, math.floor(s1)), math.ceil(s2))]


def _covered(s: int | None, tolerance: int) -> list[int | None]:
    return [s] if s is None else [k for k in range(s - tolerance, s + tolerance + 1) if k >= 0]


def footprint_keys(
    group: Group, *, tools: frozenset[str] | None = None, slice_tolerance: int = 2
) -> list[Key]:
    """The rasters of :func:`footprints`: one per image, then one per (image, slice) covered."""
    k_images = len(group.sample.images)
    sliced = {
        (k, c)
        for t in group.trajectories
        for k, s, _ in _regions(t, tools)
        if s is not None and 0 <= k < k_images
        for c in _covered(s, slice_tolerance)
    }
    plain: list[Key] = [(k, None) for k in range(k_images)]
    return plain + sorted(sliced, key=lambda key: (key[0], key[1] or 0))


def footprints(
    group: Group,
    *,
    grid: int = 64,
    tools: frozenset[str] | None = None,
    full_frame: float = 0.98,
    slice_tolerance: int = 2,
) -> np.ndarray:
    """Rasterised footprints, a bool array of shape ``(n_rollouts, n_keys, grid, grid)``.

    The keys are :func:`footprint_keys`: one raster per sample image (2D regions), then one
    per (image, slice) a volume region covers. A cell is covered when the box overlaps it with
    positive area, so every box inside the image covers at least one cell. Vectorised: one
    broadcast over all boxes of the group.
    """
    n, k_images = len(group), len(group.sample.images)
    keys = footprint_keys(group, tools=tools, slice_tolerance=slice_tolerance)
    index = {key: i for i, key in enumerate(keys)}
    sizes = np.asarray(image_sizes(group), dtype=np.float64)
    rows: list[tuple[int, int, int, float, float, float, float]] = []
    for r, t in enumerate(group.trajectories):
        for k, s, b in _regions(t, tools):
            if 0 <= k < k_images:
                for c in _covered(s, slice_tolerance):
                    rows.append((r, index[(k, c)], k, b[0], b[1], b[2], b[3]))
    n_keys = len(keys)
    empty = np.zeros((n, n_keys, grid, grid), dtype=bool)
    if not rows:
        return empty
    a = np.asarray(rows, dtype=np.float64)
    rid, kid = a[:, 0].astype(np.intp), a[:, 1].astype(np.intp)
    img = a[:, 2].astype(np.intp)
    a = np.delete(a, 2, axis=1)
    w, h = sizes[img, 0], sizes[img, 1]
    x1, x2 = np.clip(a[:, 2] / w, 0, 1) * grid, np.clip(a[:, 4] / w, 0, 1) * grid
    y1, y2 = np.clip(a[:, 3] / h, 0, 1) * grid, np.clip(a[:, 5] / h, 0, 1) * grid
    frac = (x2 - x1) * (y2 - y1) / (grid * grid)
    keep = (x2 > x1) & (y2 > y1) & (frac < full_frame)
    if not keep.any():
        return empty
    x1, x2, y1, y2, rid, kid = x1[keep], x2[keep], y1[keep], y2[keep], rid[keep], kid[keep]
    i0 = np.minimum(np.floor(x1), grid - 1)
    i1 = np.maximum(np.ceil(x2), i0 + 1)
    j0 = np.minimum(np.floor(y1), grid - 1)
    j1 = np.maximum(np.ceil(y2), j0 + 1)
    cells = np.arange(grid)
    in_x = ((cells >= i0[:, None]) & (cells < i1[:, None])).astype(np.float32)
    in_y = ((cells >= j0[:, None]) & (cells < j1[:, None])).astype(np.float32)
    # Union of rectangles per (rollout, image) as one batched matrix product: target t gets
    # sum_b [b in t] outer(in_y[b], in_x[b]); cells > 0 are covered by at least one box.
    n_boxes = len(in_x)
    rows_t = np.zeros((n * n_keys, grid, n_boxes), dtype=np.float32)
    rows_t[rid * n_keys + kid, :, np.arange(n_boxes)] = in_y
    return (rows_t @ in_x > 0).reshape(n, n_keys, grid, grid)


def consensus_boxes(
    consensus: np.ndarray,
    sizes: Sequence[tuple[float, float]],
    keys: Sequence[Key] | None = None,
) -> list[dict[str, Any]]:
    """Bounding boxes (original pixels) of the connected parts of a ``(K, G, G)`` mask.

    With ``keys`` (:func:`footprint_keys`), a box on a volume's raster also names its slice.
    """
    out: list[dict[str, Any]] = []
    for i, m in enumerate(consensus):
        if not m.any():
            continue
        k, s = keys[i] if keys is not None else (i, None)
        g = m.shape[0]
        sx, sy = sizes[k][0] / g, sizes[k][1] / g
        count, _, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=4)
        for x, y, w, h, _area in stats[1:count]:
            box = (float(x * sx), float(y * sy), float((x + w) * sx), float((y + h) * sy))
            entry: dict[str, Any] = {"image_index": k, "bbox_px": box}
            if s is not None:
                entry["slice_index"] = s
            out.append(entry)
    return out


@register_group_reward("cca")
class CCAReward:
    """Consensus-aligned tool reward (see the module docstring).

    Args:
        grid: Raster side per source image.
        iou_threshold: IoU above which a T+ rollout's footprint agrees with the consensus.
        high: Reward of an agreeing T+ zoomer.
        low: Reward of a disagreeing T+ zoomer.
        no_zoom: Reward of a T+ rollout whose calls returned no image.
        positives: How T+ is found: ``"label"`` (exact match with the sample's answer),
            ``"pseudo"`` (exact match with the majority pseudo label), ``"hsr"`` (HSR against
            the label, or the pseudo label when there is none, >= ``hsr_threshold``), or
            ``"auto"`` (``label`` when the sample has one, else ``pseudo``).
        hsr_threshold: Threshold for ``positives="hsr"``.
        embedder: Embedder for ``positives="hsr"`` (``None``: the cached MiniLM).
        tools: Tool names whose regions count (``None``: every call that returned an image).
        min_voters: Fewest T+ zoomers needed for a consensus; below it they all get ``low``.
        full_frame: Boxes covering at least this share of the image are ignored.
        slice_tolerance: Slices on each side of a volume region's slice that it covers.
    """

    name = "cca"

    def __init__(
        self,
        *,
        grid: int = 64,
        iou_threshold: float = 0.5,
        high: float = 1.0,
        low: float = 0.5,
        no_zoom: float = 0.0,
        positives: Positives = "auto",
        hsr_threshold: float = 0.7,
        embedder: Embedder | str | None = None,
        tools: Sequence[str] | None = None,
        min_voters: int = 1,
        full_frame: float = 0.98,
        slice_tolerance: int = 2,
    ) -> None:
        if not 4 <= grid <= 1024:
            raise ConfigError(f"grid must be in [4, 1024]; got {grid}")
        if not 0.0 <= iou_threshold < 1.0:
            raise ConfigError(f"iou_threshold must be in [0, 1); got {iou_threshold}")
        if positives not in ("auto", "label", "pseudo", "hsr"):
            raise ConfigError(f"positives must be auto, label, pseudo or hsr; got {positives!r}")
        if min_voters < 1:
            raise ConfigError(f"min_voters must be >= 1; got {min_voters}")
        if not all(np.isfinite([high, low, no_zoom])):
            raise ConfigError(f"high, low and no_zoom must be finite; got {high}, {low}, {no_zoom}")
        self.grid, self.iou_threshold = grid, iou_threshold
        self.high, self.low, self.no_zoom = high, low, no_zoom
        self.positives, self.hsr_threshold = positives, hsr_threshold
        self._embedder_spec = embedder
        self._embedder: Embedder | None = None
        self.tools = frozenset(tools) if tools is not None else None
        self.min_voters, self.full_frame = min_voters, full_frame
        if slice_tolerance < 0:
            raise ConfigError(f"slice_tolerance must be >= 0; got {slice_tolerance}")
        self.slice_tolerance = slice_tolerance

    def _hsr_embedder(self) -> Embedder:
        if self._embedder is None:
            from medgym.rewards.fpl import resolve_embedder

            self._embedder = resolve_embedder(self._embedder_spec)
        return self._embedder

    def positive_set(self, group: Group) -> tuple[list[bool], dict[str, Any]]:
        """Which rollouts are in T+, and how that was decided."""
        s = group.sample
        answers = group_answers(group)
        mode = self.positives
        if mode == "auto":
            mode = "label" if s.labelled else "pseudo"
        diag: dict[str, Any] = {"positives": mode}
        if mode == "label":
            if s.answer is None:
                return [False] * len(group), {**diag, "reason": "no label"}
            return [bool(closed_match(a, s.answer, s.options)) for a in answers.raw], diag
        label = majority_label(answers)
        diag.update(pseudo_label=label.text, confidence=label.confidence)
        if mode == "pseudo":
            return [bool(label.norm) and a == label.norm for a in answers.norm], diag
        ref = s.answer if s.answer is not None else label.text
        scores = hsr_scores(
            answers, resolve_option(ref, s.options), self._hsr_embedder(), HSRConfig()
        )
        return [sc >= self.hsr_threshold for sc in scores], diag

    def reward(self, group: Group) -> GroupRewardResult:
        """Score the tool use of every rollout of ``group``."""
        positives, diag = self.positive_set(group)
        return self.reward_with_positives(group, positives, diag)

    def reward_with_positives(
        self, group: Group, positives: Sequence[bool], diagnostics: dict[str, Any] | None = None
    ) -> GroupRewardResult:
        """Tool rewards given T+ from elsewhere (a preset's accuracy, a judge...)."""
        n = len(group)
        if len(positives) != n:
            raise ConfigError(f"got {len(positives)} positives for a group of {n} rollouts")
        diag: dict[str, Any] = dict(diagnostics or {})
        if n == 0:
            return GroupRewardResult([], {"tool": [], "iou": []}, {**diag, "reason": "empty group"})
        masks = footprints(
            group, grid=self.grid, tools=self.tools, full_frame=self.full_frame,
            slice_tolerance=self.slice_tolerance,
        )  # fmt: skip
        flat = masks.reshape(n, -1)
        zoomed = np.count_nonzero(flat, axis=1) > 0
        pos = np.asarray(positives, dtype=bool)
        voters = pos & zoomed
        n_voters = int(voters.sum())
        rewards = np.zeros(n, dtype=np.float64)
        ious = np.zeros(n, dtype=np.float64)
        consensus = np.zeros(masks.shape[1:], dtype=bool)
        if n_voters >= self.min_voters:
            counts = masks[voters].sum(axis=0, dtype=np.int32)
            consensus = counts * 2 > n_voters
            cflat = consensus.reshape(1, -1)
            inter = np.count_nonzero(flat & cflat, axis=1)
            union = np.count_nonzero(flat | cflat, axis=1)
            ious = np.divide(inter, union, out=np.zeros(n), where=union > 0)
            rewards[voters] = np.where(ious[voters] > self.iou_threshold, self.high, self.low)
        else:
            rewards[voters] = self.low
        rewards[pos & ~zoomed] = self.no_zoom
        diag.update(
            tplus=[int(i) for i in np.flatnonzero(pos)],
            voters=n_voters,
            zoomed=[bool(z) for z in zoomed],
            consensus_boxes=consensus_boxes(
                consensus,
                image_sizes(group),
                footprint_keys(group, tools=self.tools, slice_tolerance=self.slice_tolerance),
            ),
            skipped=False,
        )
        if not pos.any():
            diag["reason"] = diag.get("reason", "empty T+")
        return GroupRewardResult(
            rewards.tolist(), {"tool": rewards.tolist(), "iou": ious.tolist()}, diag
        )
