"""The ``synthetic`` dataset: procedural radiographs and CT slices with small findings.

Each sample is one image and one question about small findings (nodules, calcification clusters)
that cannot be seen in the whole-image first view and are plain once zoomed in; see
:mod:`medgym.data.synthetic_findings` for why, :mod:`medgym.data.synthetic_questions` for the
question families and ``docs/bundled_data.md`` for the whole design.

Images are never stored: an :class:`~medgym.core.images.ImageRef` holds a ``synthetic://`` URI
that spells out everything needed to redraw the image (:class:`SyntheticSpec`), and
:func:`resolve_synthetic` draws it on demand on any worker. Building samples draws no pixels.

Example:
    >>> from medgym.data import load, load_image
    >>> s = load("synthetic", split="test", num_samples=2, image_size=512)[0]
    >>> s.source, load_image(s.images[0]).size
    ('synthetic', (512, 512))
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Evidence, Sample
from medgym.data.synthetic_anatomy import NOISE_SIGMA, Anatomy, render_background
from medgym.data.synthetic_findings import FindingSpec, draw_findings
from medgym.data.synthetic_questions import (
    DEFAULT_FAMILIES,
    FAMILIES,
    FAMILY_OPTIONS,
    Difficulty,
    build_question,
)
from medgym.errors import ConfigError, DatasetError, did_you_mean

__all__ = ["SPLITS", "SyntheticSpec", "load_synthetic", "resolve_synthetic"]

logger = logging.getLogger(__name__)

SPLITS: dict[str, int] = {"train": 0, "validate": 1, "test": 2}
"""Split names and their codes in the seed stream (``val``/``validation`` are aliases)."""
_ALIASES = {"val": "validate", "validation": "validate"}
_KINDS = ("xray", "ct")
_MODALITY = {"xray": ("X-Ray", "chest", "CR"), "ct": ("CT", "abdomen", "CT")}
_FOV_MM = {"xray": 410.0, "ct": 420.0}
_LIMITS = {"xray": (0, 4095), "ct": (-1024, 3071)}
_DTYPES = {"xray": np.uint16, "ct": np.int16}
_MAX_INDEX = 1 << 24


MAX_FINDINGS = 32
"""Most findings one ``synthetic://`` image may hold (the bundled sets draw a handful)."""


@dataclass(frozen=True, kw_only=True)
class SyntheticSpec:
    """Everything needed to redraw one synthetic image; its URI is the canonical text form.

    Attributes:
        kind: ``"xray"`` (chest radiograph, ``uint16``) or ``"ct"`` (abdominal slice, HU).
        size: Side of the square image in pixels.
        seed: Seed of the anatomy, the noise and the decoys.
        noise: Multiplier of the native noise level.
        decoys: Number of smooth look-alike blobs.
        findings: The findings drawn on top.
        anatomy: Contrast of the anatomy about the window's level, in ``[0, 1]`` (1: as
            drawn; 0: findings on plain tissue). Written in the URI only when not 1.

    Example:
        >>> spec = SyntheticSpec(kind="ct", size=256, seed=1, noise=1.0, decoys=0, findings=())
        >>> spec.uri
        'synthetic://v1?kind=ct&size=256&seed=1&noise=1&decoys=0'
        >>> SyntheticSpec.parse(spec.uri) == spec
        True
    """

    kind: str
    size: int
    seed: int
    noise: float
    decoys: int
    findings: tuple[FindingSpec, ...] = ()
    anatomy: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.anatomy <= 1.0:
            raise ConfigError(f"anatomy must be in [0, 1]; got {self.anatomy}")
        if self.kind not in _KINDS:
            raise ConfigError(f"synthetic kind must be one of {_KINDS}; got {self.kind!r}")
        if not 64 <= self.size <= 8192:
            raise ConfigError(f"synthetic image size must be in [64, 8192]; got {self.size}")
        if not 0.0 <= self.noise <= 10.0:
            raise ConfigError(f"noise must be in [0, 10]; got {self.noise}")
        if not 0 <= self.decoys <= 100:
            raise ConfigError(f"decoys must be in [0, 100]; got {self.decoys}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be in [0, 2**63); got {self.seed}")
        if len(self.findings) > MAX_FINDINGS:
            raise ConfigError(
                f"at most {MAX_FINDINGS} findings per image; got {len(self.findings)}"
            )
        for f in self.findings:  # drawing cost grows with the finding's area: bound it
            if f.size > self.size or not (0 <= f.cx <= self.size and 0 <= f.cy <= self.size):
                raise ConfigError(
                    f"finding {f.to_token()!r}: size must be <= the image size {self.size} and "
                    f"its centre inside [0, {self.size}]; got size {f.size} at ({f.cx}, {f.cy})"
                )

    @property
    def uri(self) -> str:
        """``synthetic://v1?kind=..&size=..&seed=..&noise=..&decoys=..&f=..&f=..``."""
        head = (
            f"synthetic://v1?kind={self.kind}&size={self.size}&seed={self.seed}"
            f"&noise={self.noise:g}&decoys={self.decoys}"
        )
        if self.anatomy != 1.0:
            head += f"&anatomy={self.anatomy:g}"
        return head + "".join(f"&f={f.to_token()}" for f in self.findings)

    @property
    def sha256(self) -> str:
        """SHA-256 of :attr:`uri` (the ``ImageRef.sha256`` of the image)."""
        return hashlib.sha256(self.uri.encode()).hexdigest()

    def ref(self) -> ImageRef:
        """The image reference of this spec."""
        return ImageRef(uri=self.uri, sha256=self.sha256)

    @classmethod
    def parse(cls, uri: str) -> SyntheticSpec:
        """Parse a ``synthetic://v1?...`` URI.

        Raises:
            DatasetError: Not a v1 synthetic URI, or a missing, unknown or malformed field.
        """
        parts = urlsplit(uri)
        if parts.scheme != "synthetic" or parts.netloc != "v1":
            raise DatasetError(f"expected a URI starting with 'synthetic://v1?'; got {uri!r}")
        fields: dict[str, str] = {}
        tokens: list[str] = []
        known = ("kind", "size", "seed", "noise", "decoys", "f", "anatomy")
        for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if key == "f":
                tokens.append(value)
            elif key in known:
                fields[key] = value
            else:
                raise DatasetError(
                    f"unknown field `{key}` in {uri!r}{did_you_mean(key, known)}; "
                    f"known: {', '.join(known)}"
                )
        missing = [k for k in known[:5] if k not in fields]
        if missing:
            raise DatasetError(f"synthetic URI {uri!r} lacks {', '.join(missing)}")
        try:
            return cls(
                kind=fields["kind"],
                size=int(fields["size"]),
                seed=int(fields["seed"]),
                noise=float(fields["noise"]),
                decoys=int(fields["decoys"]),
                findings=tuple(FindingSpec.from_token(t) for t in tokens),
                anatomy=float(fields.get("anatomy", 1.0)),
            )
        except (ValueError, ConfigError) as e:
            raise DatasetError(f"malformed synthetic URI {uri!r}: {e}") from e

    def render(self) -> MedImage:
        """Draw the image (deterministic: same spec, same pixels)."""
        anatomy = Anatomy.from_seed(self.kind, self.size, self.seed)
        img = render_background(
            anatomy, noise=self.noise, decoys=self.decoys, contrast=self.anatomy
        )
        draw_findings(img, self.findings)
        lo, hi = _LIMITS[self.kind]
        np.clip(img, lo, hi, out=img)
        pixels = np.rint(img).astype(_DTYPES[self.kind])
        _, body_part, code = _MODALITY[self.kind]
        mm = _FOV_MM[self.kind] / self.size
        meta: dict[str, object] = {"format": "synthetic", "body_part": body_part.upper()}
        meta.update({"plane": "axial"} if self.kind == "ct" else {"view_position": "PA"})
        return MedImage(
            pixels=pixels[None, :, :, None],
            spacing_mm=(mm, mm),
            default_window=anatomy.window,
            modality=code,
            meta=meta,
        )


def resolve_synthetic(ref: ImageRef) -> MedImage:
    """Draw the image of a ``synthetic://`` reference (the ``synthetic`` URI scheme resolver).

    Raises:
        DatasetError: The URI is malformed, or ``ref.sha256`` is not the hash of the URI.
    """
    spec = SyntheticSpec.parse(ref.uri)
    if ref.sha256 is not None and ref.sha256 != spec.sha256:
        raise DatasetError(
            f"sha256 of {ref.uri!r} is {spec.sha256}, but the reference says {ref.sha256}; "
            "the reference was edited or made by another version"
        )
    if ref.frame not in (None, 0):
        raise DatasetError(f"synthetic images have one frame; got frame={ref.frame}")
    return spec.render()


def _split_code(split: str) -> int:
    name = _ALIASES.get(split, split)
    if name not in SPLITS:
        raise ConfigError(
            f"unknown split `{split}`{did_you_mean(split, SPLITS)}; known: {', '.join(SPLITS)}"
        )
    return SPLITS[name]


class _Deck:
    """Draws from ``items`` in reshuffled rounds: every item comes up equally often."""

    def __init__(self, items: tuple[str, ...], rng: np.random.Generator) -> None:
        self.items, self.rng = items, rng
        self.pending: list[str] = []

    def draw(self) -> str:
        if not self.pending:
            self.pending = [self.items[i] for i in self.rng.permutation(len(self.items))]
        return self.pending.pop()


def load_synthetic(
    split: str = "test",
    num_samples: int = 64,
    seed: int = 0,
    image_size: int = 2048,
    difficulty: str | float = "medium",
    kinds: tuple[str, ...] = _KINDS,
    families: tuple[str, ...] = DEFAULT_FAMILIES,
    open_fraction: float = 0.5,
    contrast: float | None = None,
    density: float | None = None,
    finding_scale: float = 1.0,
    anatomy: float = 1.0,
) -> list[Sample]:
    """Build ``num_samples`` synthetic samples (no pixels are drawn).

    Sample ``i`` of a split depends only on ``(seed, split, i)`` and the knobs, so a smaller
    ``num_samples`` gives a prefix of a larger one. Splits use disjoint image seeds. Answers are
    balanced within each family, and families and image kinds take turns.

    Args:
        split: ``train``, ``validate`` (or ``val``) or ``test``.
        num_samples: Number of samples.
        seed: Base seed.
        image_size: Side of the square images in pixels; the default 2048 with a 448 px first view
            makes a medium finding about one 28 px vision patch in the view and four natively.
        difficulty: ``easy``, ``medium``, ``hard`` or a number in ``[0, 1]``.
        kinds: Image kinds to use: ``xray`` (chest radiograph) and/or ``ct`` (abdominal CT).
        families: Question families to use (default
            :data:`~medgym.data.synthetic_questions.DEFAULT_FAMILIES`; any of ``FAMILIES``).
        open_fraction: Share of ``count`` and ``shape`` questions asked without options.
        contrast: Texture amplitude of the findings in noise standard deviations, replacing the
            difficulty's (2.2-3.6). High values (the tiny agent's task uses 10) make a finding
            plain when zoomed and leave a faint mottled trace in a 3x-shrunk first view: coarse
            localisation becomes possible there while shape, count and kind still need the
            zoom (see ``docs/bundled_data.md``). In ``[0.5, 20]``.
        density: Mean brightness offset of a finding inside its shape, as a fraction of its
            texture amplitude, in ``[0, 1]`` (default 0: the zero-mean texture that shrinking
            erases). Above 0 a finding is a faint blob in the first view, so coarse
            localisation is possible there; its outline, granule count and grain still need
            the zoom.
        finding_scale: Multiplier of the findings' size (and of the free regions of
            ``presence`` questions, which are drawn around a finding), in ``[0.5, 3]``. At 2.5 a
            finding fills about a fifth of a zoom on its zone, which a vision tower trained from
            scratch on CPU learns to see, while it stays a few patches wide in a 3x-shrunk
            first view (the tiny agent's task; ``docs/learning.md``).
        anatomy: Contrast of the anatomy behind the findings, in ``[0, 1]``: 1 as drawn, 0
            findings on plain tissue (noise kept). Placement still follows the anatomy.

    Returns:
        The samples, ``Sample.meta`` holding the difficulty, the findings and the ``query``.

    Raises:
        ConfigError: A knob is out of range.
    """
    code = _split_code(split)
    split = _ALIASES.get(split, split)
    if not 0 <= num_samples <= _MAX_INDEX:
        raise ConfigError(f"num_samples must be in [0, {_MAX_INDEX}]; got {num_samples}")
    if not 256 <= image_size <= 8192:
        raise ConfigError(f"image_size must be in [256, 8192]; got {image_size}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0; got {seed}")
    if not 0.0 <= open_fraction <= 1.0:
        raise ConfigError(f"open_fraction must be in [0, 1]; got {open_fraction}")
    for k in kinds:
        if k not in _KINDS:
            raise ConfigError(f"unknown image kind `{k}`{did_you_mean(k, _KINDS)}")
    for f in families:
        if f not in FAMILIES:
            raise ConfigError(f"unknown question family `{f}`{did_you_mean(f, FAMILIES)}")
    if not kinds or not families:
        raise ConfigError("kinds and families must not be empty")
    level = Difficulty.parse(difficulty)
    if contrast is not None:
        if not 0.5 <= contrast <= 20.0:
            raise ConfigError(f"contrast must be in [0.5, 20] noise sigmas; got {contrast}")
        level = replace(level, contrast=float(contrast))
    if density is not None:
        if not 0.0 <= density <= 1.0:
            raise ConfigError(
                f"density must be in [0, 1] (a fraction of the amplitude); got {density}"
            )
        level = replace(level, density=float(density))
    if not 0.0 <= anatomy <= 1.0:
        raise ConfigError(f"anatomy must be in [0, 1]; got {anatomy}")
    if not 0.5 <= finding_scale <= 3.0:
        raise ConfigError(f"finding_scale must be in [0.5, 3]; got {finding_scale}")
    if finding_scale != 1.0:
        lo, hi = level.size
        level = replace(level, size=(lo * finding_scale, hi * finding_scale))
    deck_rng = np.random.default_rng([seed, code, 0])
    family_deck = _Deck(tuple(families), deck_rng)
    kind_deck = _Deck(tuple(kinds), deck_rng)
    answer_decks = {f: _Deck(FAMILY_OPTIONS[f], deck_rng) for f in families}
    samples = []
    for i in range(num_samples):
        family = family_deck.draw()
        kind = kind_deck.draw()
        answer = answer_decks[family].draw()
        samples.append(
            _make_sample(
                split,
                seed,
                code,
                i,
                kind,
                family,
                answer,
                image_size,
                level,
                open_fraction,
                anatomy,
            )
        )
    return samples


def _make_sample(
    split: str,
    seed: int,
    code: int,
    index: int,
    kind: str,
    family: str,
    answer: str,
    size: int,
    level: Difficulty,
    open_fraction: float,
    anatomy_contrast: float = 1.0,
) -> Sample:
    image_seed = ((seed * len(SPLITS) + code) << 24) | index  # disjoint across splits
    rng = np.random.default_rng([image_seed, 7])
    anatomy = Anatomy.from_seed(kind, size, image_seed)
    amp = level.contrast * NOISE_SIGMA[kind] * level.noise
    draft = None
    for attempt in range(20):  # a crowded layout is retried with the next random draws
        try:
            draft = build_question(
                family,
                answer,
                rng,
                width=size,
                height=size,
                allowed=anatomy.allowed,
                difficulty=level,
                amp=amp,
                open_ended=bool(rng.random() < open_fraction),
            )
            break
        except DatasetError as e:
            logger.debug("sample %d attempt %d: %s", index, attempt, e)
    if draft is None:
        raise DatasetError(f"could not lay out synthetic sample {index} ({family}, {kind})")
    spec = SyntheticSpec(
        kind=kind,
        size=size,
        seed=image_seed,
        noise=round(level.noise, 3),
        decoys=level.decoys,
        findings=draft.findings,
        anatomy=anatomy_contrast,
    )
    modality, body_part, _ = _MODALITY[kind]
    return Sample(
        id=f"synthetic-{split}-{index:05d}-{spec.sha256[:10]}",
        images=(spec.ref(),),
        question=draft.question,
        answer=draft.answer,
        answer_type=draft.answer_type,  # type: ignore[arg-type]
        options=draft.options,
        modality=modality,
        body_part=body_part,
        question_type=family,
        evidence=tuple(Evidence(bbox_px=b) for b in draft.evidence),
        source="synthetic",
        meta={
            "difficulty": level.level,
            "image_kind": kind,
            "image_seed": image_seed,
            "split": split,
            "index": index,
            "chance": 1.0 / len(FAMILY_OPTIONS[family]),
            "findings": [f.as_dict() for f in draft.findings],
            "query": draft.query,
        },
    )
