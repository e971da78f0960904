"""Where the findings of a zoom question go: difficulty knobs, zones and the placer.

Geometry only: a :class:`FindingPlacer` draws sizes and positions from a numpy generator and
checks each box against a predicate (``allowed``: is this visible tissue?) and the boxes placed
before it, so datasets lay out findings without drawing a pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from medgym.core.bbox import BBox, intersection
from medgym.data.synthetic_findings import (
    MAX_GRANULES,
    MIN_GRANULES,
    NODULE,
    NODULE_SHAPES,
    FindingSpec,
)
from medgym.errors import ConfigError, DatasetError, did_you_mean

__all__ = ["PRESETS", "Allowed", "Difficulty", "FindingPlacer", "Region", "zones"]

PRESETS: dict[str, float] = {"easy": 0.0, "medium": 0.5, "hard": 1.0}

Allowed = Callable[[BBox], bool]


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


@dataclass(frozen=True)
class Difficulty:
    """Knobs derived from one difficulty level in ``[0, 1]``.

    Attributes:
        level: 0 is easy, 1 is hard.
        size: ``(low, high)`` longest side of a finding as a fraction of the image's longest
            side; at the default 2048 px image and a 448 px first view, a medium finding is
            111-120 px wide natively (four 28 px vision patches) and 24-26 px in the view (one
            patch).
        contrast: Texture amplitude in units of the noise standard deviation.
        noise: Multiplier of the image's native noise level.
        decoys: Smooth blobs drawn on the background (they look like nodules in the first view).
        extra: Fewest extra findings elsewhere in the image (at most one more is drawn).
        density: Mean offset of a finding inside its shape, as a fraction of its texture
            amplitude (0: zero-mean texture, invisible once shrunk; see ``load_synthetic``).
    """

    level: float
    size: tuple[float, float]
    contrast: float
    noise: float
    decoys: int
    extra: int
    density: float = 0.0

    @classmethod
    def parse(cls, value: str | float) -> Difficulty:
        """Build from a preset name (``easy``, ``medium``, ``hard``) or a float in ``[0, 1]``.

        Raises:
            ConfigError: Unknown name or a number outside ``[0, 1]``.
        """
        if isinstance(value, str):
            if value not in PRESETS:
                raise ConfigError(
                    f"difficulty must be one of {', '.join(PRESETS)} or a number in [0, 1]; "
                    f"got {value!r}{did_you_mean(value, PRESETS)}"
                )
            t = PRESETS[value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            t = float(value)
            if not 0.0 <= t <= 1.0:
                raise ConfigError(f"difficulty must be in [0, 1]; got {value}")
        else:
            raise ConfigError(f"difficulty must be a preset name or a number; got {value!r}")
        hi = 0.0615 - 0.007 * t
        return cls(
            level=t,
            size=(hi - 0.0035, hi),
            contrast=_lerp(3.6, 2.2, t),
            noise=_lerp(0.8, 1.2, t),
            decoys=round(_lerp(2, 10, t)),
            extra=round(2 * t),
        )


@dataclass(frozen=True)
class Region:
    """A named region of the image, in original pixels."""

    name: str
    text: str
    box_px: BBox


def zones(width: int, height: int) -> list[Region]:
    """The nine zones of a ``width x height`` image, row by row."""
    rows, cols = ("upper", "middle", "lower"), ("left", "center", "right")
    cuts = ("0", "33", "67", "100")
    out = []
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            name = "central" if (r, c) == (1, 1) else f"{row}-{col}"
            text = (
                f"the {name} zone of the image (x {cuts[c]}–{cuts[c + 1]}%, "
                f"y {cuts[r]}–{cuts[r + 1]}%)"
            )
            box = (c * width / 3, r * height / 3, (c + 1) * width / 3, (r + 1) * height / 3)
            out.append(Region(name, text, box))
    return out


def _grow(box: BBox, by: float) -> BBox:
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


def _inside(inner: BBox, outer: BBox) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


class FindingPlacer:
    """Places findings at random where ``allowed`` says, away from each other.

    Args:
        rng: Source of sizes, positions, angles and finding seeds.
        width: Image width in pixels.
        height: Image height in pixels.
        allowed: Whether a finding box (original pixels) may go there.
        difficulty: Finding sizes.
        amp: Texture amplitude of the findings in native units.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        width: int,
        height: int,
        allowed: Allowed,
        difficulty: Difficulty,
        amp: float,
    ) -> None:
        self.rng, self.width, self.height = rng, width, height
        self.allowed, self.difficulty, self.amp = allowed, difficulty, amp
        self.side = max(width, height)
        self.gap = 0.03 * self.side
        self.placed: list[FindingSpec] = []
        self.avoid: list[BBox] = []

    def size(self) -> int:
        """A finding size (longest side, pixels) for the difficulty."""
        lo, hi = self.difficulty.size
        return max(8, math.floor(self.side * self.rng.uniform(lo, hi)))

    def spec(self, kind: str, variant: str | int, cx: float = 0, cy: float = 0) -> FindingSpec:
        """A finding of ``kind`` (``variant``: nodule shape or granule count) at ``(cx, cy)``."""
        shape, count = (str(variant), 1) if kind == NODULE else ("cluster", int(variant))
        return FindingSpec(
            kind=kind,  # type: ignore[arg-type]
            shape=shape,
            count=count,
            cx=round(cx),
            cy=round(cy),
            size=self.size(),
            angle=int(self.rng.integers(0, 180)),
            amp=round(self.amp, 1),
            seed=int(self.rng.integers(0, 2**31)),
            density=self.difficulty.density,
        )

    def place(self, kind: str, variant: str | int, area: BBox, tries: int = 60) -> FindingSpec:
        """Place one finding fully inside ``area``; :class:`DatasetError` when it cannot."""
        base = self.spec(kind, variant)
        x1, y1, x2, y2 = base.bbox_px
        hw, hh = (x2 - x1) / 2 + self.gap, (y2 - y1) / 2 + self.gap
        for _ in range(tries):
            lo_x, hi_x = area[0] + hw, area[2] - hw
            lo_y, hi_y = area[1] + hh, area[3] - hh
            if hi_x <= lo_x or hi_y <= lo_y:
                break
            cx, cy = self.rng.uniform(lo_x, hi_x), self.rng.uniform(lo_y, hi_y)
            spec = replace(base, cx=round(cx), cy=round(cy))
            box = spec.bbox_px
            if not _inside(box, area) or not self.allowed(box):
                continue
            if any(intersection(_grow(box, self.gap), b) for b in self.avoid):
                continue
            self.placed.append(spec)
            self.avoid.append(box)
            return spec
        raise DatasetError(f"no room for a {kind} of {base.size} px in region {area}")

    def place_in_zones(self, kind: str, variant: str | int, candidates: list[Region]) -> Region:
        """Place one finding in the first of ``candidates`` with room; return that zone."""
        for zone in candidates:
            try:
                self.place(kind, variant, zone.box_px, tries=25)
            except DatasetError:
                continue
            return zone
        raise DatasetError(f"no zone has room for a {kind}")

    def random_variant(self, kind: str) -> str | int:
        """A random nodule shape or granule count."""
        if kind == NODULE:
            return str(self.rng.choice(NODULE_SHAPES))
        return int(self.rng.integers(MIN_GRANULES, MAX_GRANULES + 1))

    def extras(self, count: int, zones_left: list[Region], kinds: tuple[str, ...]) -> None:
        """Add up to ``count`` findings of random ``kinds``, one per zone of ``zones_left``."""
        for zone in zones_left:
            if count <= 0:
                break
            kind = str(self.rng.choice(kinds))
            try:
                self.place(kind, self.random_variant(kind), zone.box_px, tries=15)
            except DatasetError:
                continue
            count -= 1
