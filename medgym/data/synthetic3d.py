"""``synthetic3d``: procedural CT-like volumes where the finding lies on a few slices only.

Each volume is ``slices`` axial slices of ``size`` x ``size`` pixels: a soft-tissue body with
noise, and (in most samples) one round nodule, a sphere of radius ``r`` pixels spanning the
slices ``c - h .. c + h``. Its centre slice ``c`` is drawn at least ``h + 2`` slices away from
the middle slice, so:

**Proof that scrolling is needed.** A session's first view of a volume is its middle slice
(``ViewSpec.slice_index`` unset), which never intersects the nodule, and every other slice
of the volume is pure background (body and noise drawn with the sample's seed, identical in
distribution whether or not a nodule exists). So the first view carries no information about
the answer: presence and location are at chance without a tool that shows another slice. With
``scroll`` (or ``overview``) a policy that looks at every ``2h + 1``-th slice or closer lands on
the nodule (:class:`medgym.agents.scripted.ScrollerPolicy` looks at least every 5 slices, with
overviews of slice ranges; nodules span 5 to 7 slices).

Questions (closed, two options, answers balanced): ``presence`` ("Is there a nodule anywhere in
this CT volume?"), ``location`` ("Which half of the volume holds the nodule?"), ``side`` (on
which side of the image it lies; never near the midline) and ``size`` (is its largest diameter
smaller or larger than :func:`size_threshold_mm`, 14.4 mm for 128 px slices of 0.8 mm; the
nodules' diameters stay at least 1.6 mm, one pixel of radius, clear of it). Its width in a
slice off the nodule's centre is smaller than its diameter, so ``size`` is answered by
measuring where the nodule is widest: on its centre slice, or in a coronal plane through it.
Images are ``synthetic3d://`` references drawn on demand from their parameters.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Evidence, Sample
from medgym.errors import ConfigError, DatasetError

__all__ = [
    "FAMILIES3D",
    "Volume3DSpec",
    "load_synthetic3d",
    "resolve_synthetic3d",
    "size_threshold_mm",
]

FAMILIES3D = ("presence", "location", "side", "size")
SPACING_MM = (0.8, 0.8)
#: Distance between slices: thicker than the pixels, as in most clinical CT.
SLICE_SPACING_MM = 2.0
_BODY, _NOISE, _NODULE = 80.0, 6.0, 90.0
_SPLITS = {"train": 0, "validate": 1, "val": 1, "test": 2}


@dataclass(frozen=True)
class Volume3DSpec:
    """Everything a volume is drawn from (its ``synthetic3d://`` URI says the same).

    Attributes:
        seed: Seed of the noise.
        size: Side of a slice in pixels (32-512).
        slices: Number of slices (9-256).
        nodule: ``(c, x, y, r, h)``: centre slice, centre pixel, radius in pixels and half
            depth in slices; ``None`` for a volume without a nodule.
    """

    seed: int
    size: int
    slices: int
    nodule: tuple[int, int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 512 or not 9 <= self.slices <= 256 or self.seed < 0:
            raise DatasetError(
                f"synthetic3d volume needs size in 32..512, slices in 9..256 and seed >= 0; "
                f"got size={self.size}, slices={self.slices}, seed={self.seed}"
            )
        if self.nodule is not None:
            c, x, y, r, h = self.nodule
            if not (c - h >= 0 and c + h < self.slices and 2 <= r <= self.size // 4 and h >= 1
                    and r <= x < self.size - r and r <= y < self.size - r):  # fmt: skip
                raise DatasetError(f"synthetic3d nodule {self.nodule} does not fit the volume")

    @property
    def uri(self) -> str:
        """The ``synthetic3d://`` URI of this volume."""
        q = {"seed": self.seed, "size": self.size, "slices": self.slices}
        if self.nodule is not None:
            q["nodule"] = ":".join(map(str, self.nodule))  # type: ignore[assignment]
        return "synthetic3d://v1?" + urlencode(q)

    @classmethod
    def parse(cls, uri: str) -> Volume3DSpec:
        """Read a ``synthetic3d://v1?...`` URI.

        Raises:
            DatasetError: Not such a URI, or a parameter missing or malformed.
        """
        head, _, query = uri.partition("?")
        if head != "synthetic3d://v1":
            raise DatasetError(f"expected a synthetic3d://v1?... URI; got {uri!r:.100}")
        q = {k: v[0] for k, v in parse_qs(query).items()}
        try:
            nodule = tuple(int(v) for v in q["nodule"].split(":")) if "nodule" in q else None
            if nodule is not None and len(nodule) != 5:
                raise ValueError("nodule needs c:x:y:r:h")
            return cls(int(q["seed"]), int(q["size"]), int(q["slices"]), nodule)  # type: ignore[arg-type]
        except (KeyError, ValueError) as e:
            raise DatasetError(f"malformed synthetic3d URI {uri!r:.100}: {e}") from e

    def render(self) -> MedImage:
        """Draw the volume: ``(slices, size, size, 1)`` uint8, 0.8 mm pixels, 2 mm apart."""
        rng = np.random.default_rng(self.seed)
        n, s = self.slices, self.size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        body = ((xx - s / 2) / (0.42 * s)) ** 2 + ((yy - s / 2) / (0.36 * s)) ** 2 <= 1.0
        vol = rng.normal(0.0, _NOISE, size=(n, s, s)).astype(np.float32)
        vol += np.where(body, _BODY, 20.0).astype(np.float32)[None]
        if self.nodule is not None:
            c, x, y, r, h = self.nodule
            for k in range(c - h, c + h + 1):
                rk = r * math.sqrt(max(0.0, 1.0 - ((k - c) / (h + 1)) ** 2))
                disk = (xx - x) ** 2 + (yy - y) ** 2 <= rk**2
                vol[k][disk] += _NODULE
        pixels = np.clip(vol, 0, 255).astype(np.uint8)[..., None]
        return MedImage(
            pixels=pixels,
            spacing_mm=SPACING_MM,
            slice_spacing_mm=SLICE_SPACING_MM,
            modality="CT",
        )


def resolve_synthetic3d(ref: ImageRef) -> MedImage:
    """Draw the volume of a ``synthetic3d://`` reference (the URI scheme's resolver)."""
    return Volume3DSpec.parse(ref.uri).render()


def load_synthetic3d(
    split: str = "test",
    num_samples: int = 32,
    seed: int = 0,
    size: int = 128,
    slices: int = 64,
    families: tuple[str, ...] = FAMILIES3D,
) -> list[Sample]:
    """Build ``num_samples`` volume questions (no voxels are drawn until an image is loaded).

    Sample ``i`` depends only on ``(seed, split, i)`` and the knobs. Families take turns and
    each family's answers alternate, so both answers are equally frequent.

    Args:
        split: ``train``, ``validate`` (or ``val``) or ``test``.
        num_samples: Number of samples.
        seed: Base seed.
        size: Side of a slice in pixels.
        slices: Slices per volume (9-256; at least 9, so a nodule fits away from the middle).
        families: Question families (:data:`FAMILIES3D`).

    Raises:
        ConfigError: An unknown split or family, or a bad size.
    """
    if split not in _SPLITS:
        raise ConfigError(f"unknown split {split!r}; known: {', '.join(_SPLITS)}")
    bad = [f for f in families if f not in FAMILIES3D]
    if bad or not families:
        raise ConfigError(f"families must be among {FAMILIES3D}; got {families!r}")
    if num_samples < 0:
        raise ConfigError(f"num_samples must be >= 0; got {num_samples}")
    out = []
    for i in range(num_samples):
        family = families[i % len(families)]
        turn = (i // len(families)) % 2  # alternates each family's answer
        key = f"{seed}:{_SPLITS[split]}:{i}".encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        out.append(_sample(split, i, family, turn, rng, size, slices))
    return out


def _radii(size: int) -> tuple[int, int]:
    """Smallest and largest nodule radius in pixels for slices of ``size`` pixels."""
    return max(3, size // 20), max(4, size // 10)


def size_threshold_mm(size: int) -> float:
    """The diameter the ``size`` question asks about: between the small and the large nodules."""
    lo, hi = _radii(size)
    return round((lo + hi) * SPACING_MM[1], 1)


def _nodule(
    rng: np.random.Generator,
    size: int,
    slices: int,
    half: int | None,
    side: int | None = None,
    large: int | None = None,
) -> tuple:
    """A nodule off the middle slice.

    ``half``, ``side`` and ``large`` (0 or 1) pick its half of the slices, its side and whether
    its diameter is under or over :func:`size_threshold_mm` (by a margin).
    """
    mid = slices // 2
    h = int(rng.integers(2, 4))  # 5 to 7 slices: a stride of 5 never steps over one
    lo, hi = _radii(size)
    if large is None:
        r = int(rng.integers(lo, hi + 1))
    else:  # at least half a radius step clear of the threshold (lo + hi) / 2
        cut = (lo + hi) / 2
        small_r, large_r = (lo, math.floor(cut - 0.5)), (math.ceil(cut + 0.5), hi)
        a, b = large_r if large else small_r
        r = int(rng.integers(a, max(a, b) + 1))
    lo_first, hi_first = h, mid - h - 2  # centre slices of the first half, clear of the middle
    lo_second, hi_second = mid + h + 2, slices - h - 1
    if hi_first < lo_first or hi_second < lo_second:
        raise ConfigError(f"slices={slices} is too few for a nodule away from the middle slice")
    if half is None:
        half = int(rng.integers(0, 2))
    c = int(
        rng.integers(lo_first, hi_first + 1)
        if half == 0
        else rng.integers(lo_second, hi_second + 1)
    )
    if side is None:
        x = int(rng.integers(int(0.3 * size), int(0.7 * size)))
    elif side == 0:
        x = int(rng.integers(int(0.25 * size), int(0.4 * size)))
    else:
        x = int(rng.integers(int(0.6 * size), int(0.75 * size)))
    y = int(rng.integers(int(0.35 * size), int(0.65 * size)))
    return (c, x, y, r, h)


def _sample(
    split: str, i: int, family: str, turn: int, rng: np.random.Generator, size: int, slices: int
) -> Sample:
    noise_seed = int(rng.integers(0, 2**31))
    if family == "presence":
        nodule = _nodule(rng, size, slices, None) if turn == 0 else None
        question = f"Is there a nodule anywhere in this CT volume of {slices} slices?"
        options, answer = ("yes", "no"), "yes" if nodule else "no"
    elif family == "size":
        nodule = _nodule(rng, size, slices, None, None, turn)
        thr = size_threshold_mm(size)
        question = (
            f"This CT volume of {slices} slices holds one nodule. Is its largest diameter "
            f"smaller or larger than {thr:g} mm?"
        )
        options = (f"smaller than {thr:g} mm", f"larger than {thr:g} mm")
        answer = options[turn]
    elif family == "side":
        nodule = _nodule(rng, size, slices, None, turn)
        question = "On which side of the image is the nodule in this CT volume?"
        options = ("left side of the image", "right side of the image")
        answer = options[turn]
    else:
        nodule = _nodule(rng, size, slices, turn)
        question = (
            f"This CT volume of {slices} slices holds one nodule. Is it in the first half of "
            f"the slices (0-{slices // 2 - 1}) or the second half ({slices // 2}-{slices - 1})?"
        )
        options, answer = ("first half", "second half"), ("first half", "second half")[turn]
    spec = Volume3DSpec(noise_seed, size, slices, nodule)
    evidence: tuple[Evidence, ...] = ()
    meta: dict = {"family": family, "slices": slices}
    if nodule is not None:
        c, x, y, r, h = nodule
        evidence = (Evidence(image_index=0, bbox_px=(x - r, y - r, x + r, y + r)),)
        meta["nodule_slices"] = [c - h, c + h]
        meta["diameter_mm"] = round(2 * r * SPACING_MM[1], 1)
    return Sample(
        id=f"synthetic3d-{split}-{i:05d}",
        images=(ImageRef(uri=spec.uri),),
        question=question,
        answer=answer,
        answer_type="closed",
        options=options,
        evidence=evidence,
        modality="CT",
        body_part="chest",
        question_type=family,
        source="synthetic3d",
        meta=meta,
    )
