"""Small synthetic findings: geometry, a compact text encoding, and the drawer.

A finding is a nodule (one shape: round, oval, irregular or spiculated) or a calcification cluster
(2-5 small granules). Both are drawn as a *fine texture*: a checkerboard of 2x2-pixel cells with a
random sign and amplitude per cell, kept only where the cell centre falls inside the shape. Every
cell, and so every aligned block of 2x2 cells, sums to zero: the finding has no low-frequency
content. At native resolution (or zoomed in) the texture stands out of the noise as a grainy patch
with a crisp outline; once the image is shrunk 4x or more to fit the first view, area averaging
cancels it and the finding is gone, as fine detail is on a real downsampled radiograph. That is
what makes zooming necessary (see ``docs/bundled_data.md``).

The box of a finding is computed from its spec alone (no pixels), so datasets can place findings
and write evidence boxes without rendering, and any worker can redraw them from the spec.

Example:
    >>> f = FindingSpec(kind="nodule", shape="oval", count=1, cx=500, cy=400, size=112,
    ...                 angle=30, amp=80.0, seed=7)
    >>> FindingSpec.from_token(f.to_token()) == f
    True
    >>> x1, y1, x2, y2 = f.bbox_px
    >>> max(x2 - x1, y2 - y1) <= 114
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import cv2
import numpy as np

from medgym.core.bbox import BBox
from medgym.errors import ConfigError

__all__ = [
    "CALCIFICATION",
    "MAX_GRANULES",
    "MIN_GRANULES",
    "NODULE",
    "NODULE_SHAPES",
    "FindingSpec",
    "draw_findings",
]

NODULE = "nodule"
CALCIFICATION = "calcification"
NODULE_SHAPES: tuple[str, ...] = ("round", "oval", "irregular", "spiculated")
MIN_GRANULES = 2
MAX_GRANULES = 5

FindingKind = Literal["nodule", "calcification"]

_POINTS = 360
_GRANULE_SPACING = 1.45  # smallest centre distance of two granules, in granule diameters
_IRREGULAR_SOLIDITY = 0.92  # an irregular outline fills at most this share of its hull
_SHIFT = 4  # fixed-point bits for cv2.fillPoly: sub-pixel accurate outlines


@dataclass(frozen=True, kw_only=True)
class FindingSpec:
    """Everything needed to redraw one finding.

    Attributes:
        kind: ``"nodule"`` or ``"calcification"``.
        shape: Nodule shape (one of :data:`NODULE_SHAPES`); ``"cluster"`` for calcifications.
        count: Number of granules of a calcification cluster; 1 for a nodule.
        cx: Centre of the box, x, in original pixels.
        cy: Centre of the box, y, in original pixels.
        size: Longest side of the shape's extent in original pixels (the box adds at most one
            2-pixel cell on each side).
        angle: Rotation of the shape in degrees.
        amp: Texture amplitude in the image's native units (HU for CT).
        seed: Seed of the outline and of the texture.
    """

    kind: FindingKind
    shape: str
    count: int
    cx: int
    cy: int
    size: int
    angle: int
    amp: float
    seed: int
    density: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == NODULE:
            if self.shape not in NODULE_SHAPES or self.count != 1:
                raise ConfigError(
                    f"a nodule needs shape in {NODULE_SHAPES} and count 1; "
                    f"got shape={self.shape!r}, count={self.count}"
                )
        elif self.kind == CALCIFICATION:
            if self.shape != "cluster" or not MIN_GRANULES <= self.count <= MAX_GRANULES:
                raise ConfigError(
                    f"a calcification needs shape 'cluster' and {MIN_GRANULES}-{MAX_GRANULES} "
                    f"granules; got shape={self.shape!r}, count={self.count}"
                )
        else:
            raise ConfigError(
                f"finding kind must be {NODULE!r} or {CALCIFICATION!r}; got {self.kind!r}"
            )
        if self.size < 8:
            raise ConfigError(f"finding size must be >= 8 px; got {self.size}")
        if not math.isfinite(self.amp) or self.amp <= 0:
            raise ConfigError(f"finding amplitude must be a positive number; got {self.amp}")
        if not (math.isfinite(self.density) and 0.0 <= self.density <= 1.0):
            raise ConfigError(f"finding density must be in [0, 1]; got {self.density}")

    # ------------------------------------------------------------------ encoding
    def to_token(self) -> str:
        """Compact text form: ``kind:shape:count:cx:cy:size:angle:amp:seed[:density]``.

        ``density`` is written only when it is not 0, so tokens without it keep their meaning.
        """
        token = (
            f"{self.kind}:{self.shape}:{self.count}:{self.cx}:{self.cy}:{self.size}:"
            f"{self.angle}:{self.amp:g}:{self.seed}"
        )
        return f"{token}:{self.density:g}" if self.density else token

    @classmethod
    def from_token(cls, token: str) -> FindingSpec:
        """Parse :meth:`to_token`'s output.

        Raises:
            ConfigError: The token does not have nine (or ten) well-formed fields.
        """
        parts = token.split(":")
        if len(parts) not in (9, 10):
            raise ConfigError(
                f"finding token {token!r} has {len(parts)} fields; expected 9 or 10: "
                "kind:shape:count:cx:cy:size:angle:amp:seed[:density]"
            )
        kind, shape, *nums = parts
        try:
            count, cx, cy, size, angle = (int(v) for v in nums[:5])
            amp, seed = float(nums[5]), int(nums[6])
            density = float(nums[7]) if len(nums) > 7 else 0.0
        except ValueError as e:
            raise ConfigError(f"finding token {token!r} holds a non-number: {e}") from e
        if kind not in (NODULE, CALCIFICATION):
            raise ConfigError(f"finding token {token!r}: unknown kind {kind!r}")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            shape=shape,
            count=count,
            cx=cx,
            cy=cy,
            size=size,
            angle=angle,
            amp=amp,
            seed=seed,
            density=density,
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-able form, with the box (for ``Sample.meta``)."""
        return {
            "kind": self.kind,
            "shape": self.shape,
            "count": self.count,
            "cx": self.cx,
            "cy": self.cy,
            "size": self.size,
            "angle": self.angle,
            "amp": self.amp,
            "density": self.density,
            "seed": self.seed,
            "bbox_px": list(self.bbox_px),
        }

    # ------------------------------------------------------------------ geometry
    @property
    def polygons(self) -> tuple[np.ndarray, ...]:
        """Outlines in original pixels: one for a nodule, one per granule for a cluster."""
        centre = np.array([self.cx, self.cy], dtype=np.float64)
        return tuple(
            p + centre
            for p in _outlines(self.kind, self.shape, self.count, self.size, self.angle, self.seed)
        )

    @cached_property
    def bbox_px(self) -> BBox:
        """The box of the drawn texture in original pixels, aligned to the 2-pixel cell grid."""
        lo, hi = _extent(self.kind, self.shape, self.count, self.size, self.angle, self.seed)
        x1 = 2 * math.floor((self.cx + lo[0]) / 2)
        y1 = 2 * math.floor((self.cy + lo[1]) / 2)
        x2 = 2 * math.ceil((self.cx + hi[0]) / 2)
        y2 = 2 * math.ceil((self.cy + hi[1]) / 2)
        return (float(x1), float(y1), float(x2), float(y2))

    def cell_mask(self) -> np.ndarray:
        """Boolean mask of the texture cells over :attr:`bbox_px`, one entry per 2x2 cell."""
        x1, y1, x2, y2 = (int(v) for v in self.bbox_px)
        mask = np.zeros(((y2 - y1) // 2, (x2 - x1) // 2), dtype=np.uint8)
        # Cell (i, j) covers pixels x1+2j..x1+2j+1; its centre x1+2j+1 maps to cell coord j + 0.5,
        # and fillPoly fills a cell when its integer index is inside: shift by -0.5.
        pts = [
            np.round(((p - (x1, y1)) / 2 - 0.5) * (1 << _SHIFT)).astype(np.int32)
            for p in self.polygons
        ]
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=_SHIFT)
        return mask.astype(bool)

    def texture(self) -> np.ndarray:
        """The texture over :attr:`bbox_px` in native units, ``float32``.

        Zero-mean unless :attr:`density` > 0, which adds ``density * amp`` inside the shape: a
        faint blob that survives shrinking (coarse localisation in the first view) while the
        outline, granules and grain still need the zoom.
        """
        mask = self.cell_mask()
        rng = np.random.default_rng([self.seed, 1])
        sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=mask.shape)
        gain = rng.uniform(0.6, 1.4, size=mask.shape).astype(np.float32)
        cells = sign * gain * mask * np.float32(self.amp)
        checker = np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=np.float32)
        tex = np.kron(cells, checker)
        if self.density:
            tex += np.kron(mask.astype(np.float32), np.ones((2, 2), np.float32)) * np.float32(
                self.density * self.amp
            )
        return tex


@lru_cache(maxsize=4096)
def _outlines(
    kind: str, shape: str, count: int, size: int, angle: int, seed: int
) -> tuple[np.ndarray, ...]:
    """Outlines about the centre of the box (pixels), cached: placement moves them a lot."""
    rng = np.random.default_rng(seed)
    unit = [_nodule_outline(shape, rng)] if kind == NODULE else _cluster_outlines(count, rng)
    theta = math.radians(angle)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    unit = [p @ rot.T for p in unit]
    allp = np.concatenate(unit)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    scale = size / float((hi - lo).max())
    mid = (lo + hi) / 2
    out = tuple((p - mid) * scale for p in unit)
    for p in out:
        p.setflags(write=False)
    return out


@lru_cache(maxsize=4096)
def _extent(
    kind: str, shape: str, count: int, size: int, angle: int, seed: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    allp = np.concatenate(_outlines(kind, shape, count, size, angle, seed))
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    return (float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1]))


def _nodule_outline(shape: str, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, _POINTS, endpoint=False)
    if shape == "oval":
        aspect = rng.uniform(1.7, 2.2)
        r = 1.0 / np.sqrt(np.cos(t) ** 2 + (aspect * np.sin(t)) ** 2)
    elif shape == "round":
        r = 1.0 + 0.025 * np.cos(3 * t + rng.uniform(0, 2 * math.pi))
    elif shape == "irregular":
        r = _lobulated(t, rng)
    else:  # spiculated: a core with narrow spikes
        core = rng.uniform(0.50, 0.58)
        n = int(rng.integers(7, 10))
        angles = (np.arange(n) + rng.uniform(-0.25, 0.25, size=n)) * (2 * math.pi / n)
        width = rng.uniform(0.17, 0.21)
        spikes = np.zeros_like(t)
        for a in angles:
            d = np.abs((t - a + math.pi) % (2 * math.pi) - math.pi)
            spikes = np.maximum(spikes, np.clip(1.0 - d / width, 0.0, 1.0))
        r = core + (1.0 - core) * spikes * rng.uniform(0.85, 1.0, size=1)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _lobulated(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A lobulated radius: low harmonics, redrawn until the outline is clearly not convex."""
    for _ in range(100):
        r = np.ones_like(t)
        for k, lo, hi in ((2, 0.10, 0.16), (3, 0.15, 0.22), (4, 0.08, 0.13), (5, 0.04, 0.08)):
            r += rng.uniform(lo, hi) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
        r = np.maximum(r, 0.4)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1).astype(np.float32)
        hull = cv2.contourArea(cv2.convexHull(pts))
        if cv2.contourArea(pts) <= _IRREGULAR_SOLIDITY * hull:
            break
    return r


def _cluster_outlines(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Granules of diameter 1 grown as a compact cluster: each touches the cluster's reach."""
    centres = np.zeros((1, 2))
    while len(centres) < count:
        base = centres[rng.integers(0, len(centres), size=64)]
        ang = rng.uniform(0, 2 * math.pi, size=64)
        dist = rng.uniform(_GRANULE_SPACING, _GRANULE_SPACING + 0.3, size=64)
        cand = base + np.stack([dist * np.cos(ang), dist * np.sin(ang)], axis=1)
        d2 = ((cand[:, None, :] - centres[None, :, :]) ** 2).sum(-1).min(1)
        ok = np.flatnonzero(d2 >= _GRANULE_SPACING**2 - 1e-9)
        if ok.size:  # 64 tries nearly always hold one; otherwise draw again
            centres = np.vstack([centres, cand[ok[0]]])
    t = np.linspace(0.0, 2 * math.pi, 72, endpoint=False)
    out = []
    for c in centres:
        r = 0.5 * (1.0 + 0.08 * np.cos(2 * t + rng.uniform(0, 2 * math.pi)))
        out.append(np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], axis=1))
    return out


def draw_findings(
    canvas: np.ndarray, findings: tuple[FindingSpec, ...] | list[FindingSpec]
) -> None:
    """Add the findings' textures to ``canvas`` in place.

    Args:
        canvas: ``float32`` array ``(H, W)`` or ``(H, W, C)`` in native units; colour images get
            the same texture on every channel.
        findings: The findings to draw; parts outside the canvas are cut off.
    """
    h, w = canvas.shape[:2]
    for f in findings:
        x1, y1, x2, y2 = (int(v) for v in f.bbox_px)
        tex = f.texture()
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        part = tex[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        if canvas.ndim == 3:
            part = part[:, :, None]
        canvas[cy1:cy2, cx1:cx2] += part
