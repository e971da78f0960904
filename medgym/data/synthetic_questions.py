"""Zoom questions about small findings: families, wording, answers and evidence.

Shared by the ``synthetic`` dataset (procedural images) and the ``realworld`` dataset (findings
placed on real images). Everything here works on geometry only: a question is built from a seed,
the image size and a predicate saying where a finding may go, without any pixels (placement is in
:mod:`medgym.data.synthetic_layout`).

Families (``Sample.question_type``):

- ``presence``: is there a nodule inside a given region (percent box)? yes/no.
- ``count``: how many granules does the calcification cluster in a zone have? 2-5.
- ``shape``: the shape of the nodule in a zone: round, oval, irregular or spiculated.
- ``side``: is the image's one nodule in the left or the right half *as displayed*? Left and right
  are the viewer's, not the patient's (a PA chest film shows the patient's right on image left).
- ``kind``: is the finding in a zone a nodule or a calcification cluster?
- ``zone_presence`` (not in the default mix, :data:`DEFAULT_FAMILIES`): is there a nodule in a
  zone? yes/no. ``presence`` with a named zone instead of a percent box: the box to look at is
  one of nine, which a small model learns to write, where a percent box must be copied digit by
  digit and reordered (the tiny agent's task, ``docs/learning.md``).

Zones are the ninths of the image (``upper-left`` ... ``lower-right``, ``central``), named in the
question with their percent ranges.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medgym.core.bbox import BBox
from medgym.data.synthetic_findings import (
    CALCIFICATION,
    MAX_GRANULES,
    MIN_GRANULES,
    NODULE,
    NODULE_SHAPES,
    FindingSpec,
)
from medgym.data.synthetic_layout import (
    PRESETS,
    Allowed,
    Difficulty,
    FindingPlacer,
    Region,
    zones,
)
from medgym.errors import ConfigError, DatasetError, did_you_mean

__all__ = [
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "FAMILY_OPTIONS",
    "PRESETS",
    "Difficulty",
    "QuestionDraft",
    "Region",
    "build_question",
    "zones",
]

FAMILY_OPTIONS: dict[str, tuple[str, ...]] = {
    "presence": ("yes", "no"),
    "count": tuple(str(n) for n in range(MIN_GRANULES, MAX_GRANULES + 1)),
    "shape": NODULE_SHAPES,
    "side": ("left", "right"),
    "kind": (NODULE, CALCIFICATION),
    "zone_presence": ("yes", "no"),
}
"""The possible answers of each family (also the options of its closed questions)."""
FAMILIES: tuple[str, ...] = tuple(FAMILY_OPTIONS)
"""Every family :func:`build_question` writes."""
DEFAULT_FAMILIES: tuple[str, ...] = ("presence", "count", "shape", "side", "kind")
"""The families of ``load("synthetic")`` and ``realworld`` unless others are asked for."""


@dataclass(frozen=True)
class QuestionDraft:
    """A question before it becomes a :class:`~medgym.core.sample.Sample`.

    Attributes:
        family: Question family (one of :data:`FAMILIES`).
        question: The question text.
        answer: The reference answer (one of the family's options).
        options: Choices of a closed question; empty for an open one.
        evidence: Boxes (original pixels) that hold the answer.
        findings: Every finding to draw on the image.
        query: What the question asks, machine-readable and answer-free (``family``,
            ``target``, ``region_px``, ``region``, ``image_size``): what a scripted reader needs.
    """

    family: str
    question: str
    answer: str
    options: tuple[str, ...]
    evidence: tuple[BBox, ...]
    findings: tuple[FindingSpec, ...]
    query: dict[str, Any] = field(default_factory=dict)

    @property
    def answer_type(self) -> str:
        """``closed`` when the draft has options, else ``open``."""
        return "closed" if self.options else "open"


def _percent_box(box: BBox, width: int, height: int) -> tuple[tuple[int, int, int, int], BBox]:
    p = (
        max(0, math.floor(box[0] / width * 100)),
        max(0, math.floor(box[1] / height * 100)),
        min(100, math.ceil(box[2] / width * 100)),
        min(100, math.ceil(box[3] / height * 100)),
    )
    px = (p[0] * width / 100, p[1] * height / 100, p[2] * width / 100, p[3] * height / 100)
    return p, px


def build_question(
    family: str,
    answer: str,
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    allowed: Allowed,
    difficulty: Difficulty,
    amp: float,
    open_ended: bool = False,
) -> QuestionDraft:
    """Place findings and write one question of ``family`` whose answer is ``answer``.

    Args:
        family: One of :data:`FAMILIES`.
        answer: One of ``FAMILY_OPTIONS[family]``: chosen by the caller to balance answers.
        rng: Source of every random choice.
        width: Image width in pixels.
        height: Image height in pixels.
        allowed: Whether a finding box (original pixels) may go there.
        difficulty: Sizes and the number of extra findings.
        amp: Texture amplitude of the findings in native units.
        open_ended: Write ``count`` and ``shape`` questions without options.

    Raises:
        ConfigError: Unknown family or an answer the family cannot have.
        DatasetError: The image has no room for the findings the question needs.
    """
    if family not in FAMILY_OPTIONS:
        raise ConfigError(f"unknown question family `{family}`{did_you_mean(family, FAMILIES)}")
    if answer not in FAMILY_OPTIONS[family]:
        raise ConfigError(f"{family} answers are {FAMILY_OPTIONS[family]}; got {answer!r}")
    placer = FindingPlacer(rng, width, height, allowed, difficulty, amp)
    extra = difficulty.extra + int(rng.integers(0, 2))
    all_zones = zones(width, height)
    order = [all_zones[i] for i in rng.permutation(len(all_zones))]
    image = (0.0, 0.0, float(width), float(height))
    query: dict[str, Any] = {"family": family, "image_size": [width, height]}
    options = FAMILY_OPTIONS[family]
    pick = int(rng.integers(0, 2))

    if family == "presence":
        evidence, region = _presence(placer, answer == "yes", image, order)
        p, region_px = region
        where = (
            f"x {p[0]}–{p[2]}%, y {p[1]}–{p[3]}% of the image "
            "(x from the left edge, y from the top)"
        )
        question = (
            f"Is there a nodule inside the region {where}?",
            f"Look at the region {where}. Does it contain a nodule?",
        )[pick]
        query.update(target=NODULE, region_px=list(region_px), region="roi")
        placer.extras(extra, order, (NODULE, CALCIFICATION))
    elif family == "zone_presence":
        zone, evidence = _zone_presence(placer, answer == "yes", order)
        question = (
            f"Is there a nodule in {zone.text}?",
            f"Look at {zone.text}. Does it contain a nodule?",
        )[pick]
        query.update(target=NODULE, region_px=list(zone.box_px), region=zone.name)
        placer.extras(extra, [z for z in order if z is not zone], (NODULE, CALCIFICATION))
    elif family == "side":
        half = (0.0, 0.0, width / 2 - placer.gap, float(height))
        if answer == "right":
            half = (width / 2 + placer.gap, 0.0, float(width), float(height))
        target = placer.place(NODULE, placer.random_variant(NODULE), half)
        evidence = (target.bbox_px,)
        question = (
            "This image shows exactly one nodule. Is it in the left or the right half of the "
            "image as displayed (the viewer's left/right, not the patient's)?",
            "Where is the only nodule in this image: image left or image right (as displayed, "
            "not the patient's side)?",
        )[pick]
        query.update(target=NODULE, region_px=list(image), region="image")
        placer.extras(extra, order, (CALCIFICATION,))
    else:
        kind, given = {
            "count": (CALCIFICATION, answer),
            "shape": (NODULE, answer),
            "kind": (answer, None),
        }[family]
        variant: str | int = placer.random_variant(kind) if given is None else given
        if kind == CALCIFICATION:
            variant = int(variant)
        zone = placer.place_in_zones(kind, variant, order)
        evidence = (placer.placed[-1].bbox_px,)
        question = _zone_question(family, zone.text, pick)
        query.update(
            target=kind if family != "kind" else "any",
            region_px=list(zone.box_px),
            region=zone.name,
        )
        placer.extras(extra, [z for z in order if z is not zone], (NODULE, CALCIFICATION))
    if open_ended and family in ("count", "shape"):
        options = ()
        question += " Answer with a number." if family == "count" else " Answer in one word."
    return QuestionDraft(
        family=family,
        question=question,
        answer=answer,
        options=options,
        evidence=tuple(evidence),
        findings=tuple(placer.placed),
        query=query,
    )


def _zone_question(family: str, where: str, pick: int) -> str:
    texts = {
        "count": (
            f"How many calcified granules make up the calcification cluster in {where}?",
            f"Count the granules of the calcification cluster in {where}.",
        ),
        "shape": (
            f"What is the shape of the nodule in {where}?",
            f"Describe the outline of the nodule in {where}: what shape is it?",
        ),
        "kind": (
            f"Is the finding in {where} a nodule or a calcification cluster?",
            f"What kind of finding lies in {where}: a nodule or a calcification cluster?",
        ),
    }
    return texts[family][pick]


def _zone_presence(
    placer: FindingPlacer, present: bool, order: list[Region]
) -> tuple[Region, tuple[BBox, ...]]:
    """The zone asked about and the evidence: its nodule, or the zone itself for *no*.

    A *no* zone holds a calcification cluster a third of the time (present, but no nodule);
    a nodule is then placed in another zone, so the image never answers by being empty.
    """
    if present:
        zone = placer.place_in_zones(NODULE, placer.random_variant(NODULE), order)
        return zone, (placer.placed[-1].bbox_px,)
    # The zone is drawn as for *yes* (the first with room for a nodule), then left without it:
    # otherwise corners, where the anatomy rarely allows a nodule, would answer *no* by name.
    zone = placer.place_in_zones(NODULE, placer.random_variant(NODULE), order)
    placer.placed.pop()
    placer.avoid.pop()
    if placer.rng.random() < 1 / 3:
        with contextlib.suppress(DatasetError):
            placer.place(CALCIFICATION, placer.random_variant(CALCIFICATION), zone.box_px, tries=20)
    placer.avoid.append(zone.box_px)
    placer.place_in_zones(
        NODULE, placer.random_variant(NODULE), [z for z in order if z is not zone]
    )
    return zone, (zone.box_px,)


def _presence(
    placer: FindingPlacer, present: bool, image: BBox, order: list[Region]
) -> tuple[tuple[BBox, ...], tuple[tuple[int, int, int, int], BBox]]:
    rng, w, h = placer.rng, placer.width, placer.height
    if present:
        target = placer.place(NODULE, placer.random_variant(NODULE), image)
        x1, y1, x2, y2 = target.bbox_px
        side = max(x2 - x1, y2 - y1) * rng.uniform(1.6, 2.1)
        margin = 0.12 * side
        rx = rng.uniform(x2 + margin - side, x1 - margin)
        ry = rng.uniform(y2 + margin - side, y1 - margin)
        roi = (max(0.0, rx), max(0.0, ry), min(float(w), rx + side), min(float(h), ry + side))
        p, roi_px = _percent_box(roi, w, h)
        placer.avoid.append(roi_px)
        return (target.bbox_px,), (p, roi_px)
    side = placer.side * float(np.mean(placer.difficulty.size)) * rng.uniform(1.6, 2.1)
    for _ in range(200):
        rx, ry = rng.uniform(0, w - side), rng.uniform(0, h - side)
        centre = (rx + side * 0.3, ry + side * 0.3, rx + side * 0.7, ry + side * 0.7)
        if placer.allowed(centre):
            break
    else:
        raise DatasetError("no room for an empty region to ask about")
    p, roi_px = _percent_box((rx, ry, rx + side, ry + side), w, h)
    if rng.random() < 1 / 3:  # a calcification cluster in the region: present, but no nodule
        with contextlib.suppress(DatasetError):
            placer.place(CALCIFICATION, placer.random_variant(CALCIFICATION), roi_px, tries=20)
    placer.avoid.append(roi_px)
    placer.place_in_zones(NODULE, placer.random_variant(NODULE), order)
    return (roi_px,), (p, roi_px)
