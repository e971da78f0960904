from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.core.images import ImageRef
from medgym.core.sample import Sample
from medgym.data import load, load_image
from medgym.errors import ConfigError
from medgym.eval.ablations import (
    ablate_samples,
    blank_samples,
    parse_ablations,
    shuffled_samples,
)


def _samples(n: int) -> list[Sample]:
    return [
        Sample(id=f"s{i}", images=(ImageRef(uri=f"img{i}.png"),), question="q?", answer="yes")
        for i in range(n)
    ]


def test_blank_image_keeps_shape_and_loses_content() -> None:
    sample = load("synthetic", split="test", num_samples=1)[0]
    blank = blank_samples([sample])[0]
    orig = load_image(sample.images[0]).pixels
    pixels = load_image(blank.images[0]).pixels
    assert pixels.shape == orig.shape and pixels.dtype == orig.dtype
    assert np.unique(pixels).size == 1 and np.unique(orig).size > 1
    assert blank.question == sample.question and blank.answer == sample.answer


def test_a_blank_volume_keeps_its_geometry() -> None:
    """Spacings and slices stay: a blanked CT reformats and measures as the original does."""
    sample = load("synthetic3d", num_samples=1)[0]
    orig = load_image(sample.images[0])
    blank = load_image(blank_samples([sample])[0].images[0])
    assert blank.pixels.shape == orig.pixels.shape and np.unique(blank.pixels).size == 1
    assert blank.slice_spacing_mm == orig.slice_spacing_mm == 2.0
    assert blank.spacing_mm == orig.spacing_mm and blank.modality == orig.modality
    assert blank.meta["blank_of"] == sample.images[0].uri


@given(st.integers(2, 40), st.integers(0, 10_000))
def test_shuffle_is_a_derangement(n: int, seed: int) -> None:
    samples = _samples(n)
    shuffled = shuffled_samples(samples, seed=seed)
    uris = [s.images[0].uri for s in shuffled]
    assert sorted(uris) == sorted(s.images[0].uri for s in samples)  # a permutation
    assert all(s.images != t.images for s, t in zip(samples, shuffled, strict=True))
    assert [s.id for s in shuffled] == [s.id for s in samples]  # questions stay put


def test_shuffle_of_one_sample_is_identity() -> None:
    samples = _samples(1)
    assert shuffled_samples(samples) == samples


def test_no_tools_leaves_samples_alone() -> None:
    samples = _samples(3)
    assert ablate_samples("no-tools", samples) == samples


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("blank-image, no-tools,blank-image", ("blank-image", "no-tools")),
        (["shuffled-image"], ("shuffled-image",)),
    ],
    ids=["none", "empty", "dedup-and-strip", "list"],
)
def test_parse_ablations(value: object, expected: tuple[str, ...]) -> None:
    assert parse_ablations(value) == expected  # type: ignore[arg-type]


def test_unknown_ablation_suggests_the_near_name() -> None:
    with pytest.raises(ConfigError, match="blank-image"):
        parse_ablations("blank-imag")
