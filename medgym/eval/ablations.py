"""Ablations that show whether a score came from the image: no tools, blank and shuffled images.

- ``no-tools``: the same policy in ``MedVQA-Direct-v0`` (answer from the first view).
- ``blank-image``: every image replaced by a uniform image of the same size (mid grey, or the
  image's mean where the values are not display values); the question is unchanged.
- ``shuffled-image``: images permuted across samples (a derangement where possible), so each
  question is asked about another sample's image.

Image reliance is the drop from the main run to the blank (or shuffled) run. A policy that
reads labels (the scripted oracle) must not be ablated: its score does not depend on pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.data.cache import SCHEMES, load_image, register_scheme
from medgym.errors import ConfigError, did_you_mean

__all__ = [
    "ABLATIONS",
    "BLANK_SCHEME",
    "LABEL_READING_POLICIES",
    "ablate_samples",
    "blank_samples",
    "ensure_blank_scheme",
    "parse_ablations",
    "shuffled_samples",
]

ABLATIONS = ("no-tools", "blank-image", "shuffled-image")
"""Ablation names accepted by the harness."""

LABEL_READING_POLICIES = frozenset({"oracle", "teacher"})
"""Policy names that read the label: never rows of an ablation table."""

BLANK_SCHEME = "medgym-blank"
"""URI scheme of blanked images: ``medgym-blank://<original uri>``."""


def _resolve_blank(ref: ImageRef) -> MedImage:
    inner = ImageRef(uri=ref.uri[len(BLANK_SCHEME) + 3 :], frame=ref.frame, axis=ref.axis)
    img = load_image(inner)
    p = img.pixels
    fill = 128 if p.dtype == np.uint8 else float(np.mean(p))
    blank = np.full(p.shape, fill, dtype=p.dtype)
    # everything but the pixels stays: spacings, window, and the plane a stack was acquired in
    return dataclasses.replace(img, pixels=blank, meta={**img.meta, "blank_of": inner.uri})


def ensure_blank_scheme() -> None:
    """Register the ``medgym-blank://`` image scheme (idempotent)."""
    if BLANK_SCHEME not in SCHEMES:
        register_scheme(BLANK_SCHEME, _resolve_blank)


def parse_ablations(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Validate ablation names (comma-separated string or list); order kept, duplicates dropped."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    for name in names:
        if name not in ABLATIONS:
            raise ConfigError(
                f"unknown ablation `{name}`{did_you_mean(name, ABLATIONS)}; "
                f"known: {', '.join(ABLATIONS)}"
            )
    return names


def blank_samples(samples: Sequence[Sample]) -> list[Sample]:
    """The samples with every image replaced by a uniform image of the same size."""
    ensure_blank_scheme()
    return [
        s.model_copy(
            update={
                "images": tuple(
                    r.model_copy(update={"uri": f"{BLANK_SCHEME}://{r.uri}", "sha256": None})
                    for r in s.images
                ),
                "meta": {**s.meta, "ablation": "blank-image"},
            }
        )
        for s in samples
    ]


def shuffled_samples(samples: Sequence[Sample], *, seed: int = 0) -> list[Sample]:
    """The samples with image tuples permuted across samples (no sample keeps its own).

    Evidence boxes are dropped (they described the original image). With one sample there is
    nothing to swap with and the sample is returned unchanged.
    """
    n = len(samples)
    if n < 2:
        return list(samples)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    perm = np.roll(perm, 1)[np.argsort(perm)]  # a cyclic shift along a random order: derangement
    return [
        s.model_copy(
            update={
                "images": samples[int(j)].images,
                "evidence": (),
                "meta": {**s.meta, "ablation": "shuffled-image", "image_of": samples[int(j)].id},
            }
        )
        for s, j in zip(samples, perm, strict=True)
    ]


def ablate_samples(name: str, samples: Sequence[Sample], *, seed: int = 0) -> list[Sample]:
    """The samples an ablation runs on (``no-tools`` changes the env, not the samples)."""
    if name == "blank-image":
        return blank_samples(samples)
    if name == "shuffled-image":
        return shuffled_samples(samples, seed=seed)
    if name in ("main", "no-tools"):
        return list(samples)
    raise ConfigError(f"unknown ablation `{name}`; known: {', '.join(ABLATIONS)}")
