"""synthetic3d: the nodule lies on a few slices, never the middle one, so scrolling is needed."""

from __future__ import annotations

import asyncio
import itertools
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import medgym  # noqa: F401 - registers the envs
from medgym.agents import GroupRunner, make_scripted_policy
from medgym.core.images import ImageRef
from medgym.core.view import render
from medgym.data import load, load_image
from medgym.data.synthetic3d import Volume3DSpec
from medgym.envs import env_session_config
from medgym.errors import ConfigError, DatasetError

THRESHOLD = 140  # the scroller's: body and noise stay well below it, a nodule well above


@pytest.fixture(scope="module")
def samples() -> list:
    return load("synthetic3d", num_samples=24)


@pytest.mark.parametrize("slices", [32, 200])
def test_the_middle_slice_never_shows_the_nodule(samples: list, slices: int) -> None:
    """The proof, checked on the pixels: the first view carries no information."""
    if slices != 32:  # a clinical-length study: the same proof
        samples = load("synthetic3d", num_samples=8, slices=slices)
    for s in samples:
        vol = load_image(s.images[0]).pixels[..., 0]
        mid = vol.shape[0] // 2
        assert vol[mid].max() < THRESHOLD, s.id
        bright = [k for k in range(vol.shape[0]) if vol[k].max() > THRESHOLD]
        if "nodule_slices" in s.meta:
            lo, hi = s.meta["nodule_slices"]
            assert bright == list(range(lo, hi + 1)) and hi - lo + 1 >= 5
        else:
            assert bright == [] and s.answer == "no"


def test_answers_are_balanced_and_deterministic(samples: list) -> None:
    for family, answers in (
        ("presence", {"yes", "no"}),
        ("location", {"first half", "second half"}),
        ("size", {"smaller than 14.4 mm", "larger than 14.4 mm"}),
    ):
        got = [s.answer for s in samples if s.question_type == family]
        assert set(got) == answers and abs(got.count(min(answers)) - len(got) / 2) <= 1
    sizes = [s for s in samples if s.question_type == "size"]
    for s in sizes:  # every diameter clear of the 14.4 mm the question asks about
        small = s.answer.startswith("smaller")
        assert (s.meta["diameter_mm"] <= 12.8) if small else (s.meta["diameter_mm"] >= 16.0)
    assert [s.images[0].uri for s in load("synthetic3d", num_samples=24)] == [
        s.images[0].uri for s in samples
    ]
    assert load("synthetic3d", num_samples=4, split="train")[0].images != samples[0].images


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("synthetic3d://v2?seed=1&size=64&slices=16", "expected a synthetic3d://v1"),
        ("synthetic3d://v1?seed=1&size=64", "malformed"),
        ("synthetic3d://v1?seed=1&size=9999&slices=16", "size in 32..512"),
        ("synthetic3d://v1?seed=1&size=64&slices=16&nodule=15:30:30:5:3", "does not fit"),
    ],
    ids=["version", "missing", "too-big", "nodule-outside"],
)
def test_bad_uris_are_dataset_errors(uri: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        load_image(ImageRef(uri=uri))


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="families"):
        load("synthetic3d", families=("volume",))
    with pytest.raises(ConfigError, match="too few"):
        load("synthetic3d", num_samples=2, slices=9)


def test_uri_round_trips() -> None:
    spec = Volume3DSpec(seed=3, size=64, slices=20, nodule=(4, 30, 30, 4, 2))
    assert Volume3DSpec.parse(spec.uri) == spec
    img = spec.render()
    assert img.spacing_mm == (0.8, 0.8) and img.slice_spacing_mm == 2.0


def test_volume_env_is_check_env_clean_and_the_scroller_answers() -> None:
    env = gym.make("MedVQA-Volume-v0", dataset={"name": "synthetic3d", "num_samples": 6})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0, options={"index": 1})
    session = env.unwrapped.session
    policy = make_scripted_policy("scroller")
    done, info = False, {}
    while not done:
        gen = asyncio.run(policy.generate(session))
        _, _, terminated, truncated, info = env.step(gen.text)
        done = terminated or truncated
    assert terminated and info["reward_parts"]["accuracy"] == 1.0
    assert session.metrics["tool_calls"] >= 1
    assert all(v.slice_index is not None for v in session.views[1:])
    # the budgets count slices seen: the middle slice, then each overview tile and scroll
    shown = {k for v in session.views[1:] for k in (v.montage or (v.slice_index,))}
    assert session.metrics["slices_viewed"] == 1 + len(shown - {32})


def test_the_scroller_beats_its_no_tools_ablation_by_a_wide_margin() -> None:
    samples = load("synthetic3d", num_samples=32)  # 8 per family, size included

    def accuracy(policy: str, env: str) -> float:
        groups = GroupRunner(env_session_config(env), n=1, progress=False).run(
            samples, make_scripted_policy(policy)
        )
        trajs = [t for g in groups for t in g.trajectories]
        return sum(t.reward_parts["accuracy"] for t in trajs) / len(trajs)

    scroller, direct = (
        accuracy("scroller", "MedVQA-Volume-v0"),
        accuracy("direct", "MedVQA-Direct-v0"),
    )
    assert scroller >= 0.95 and direct <= 0.75, (scroller, direct)


def test_a_real_volume_scrolls_in_the_volume_env() -> None:
    """nibabel's example MRI (a real NIfTI volume shipped in the package) in MedVQA-Volume-v0."""
    pytest.importorskip("nibabel")
    volumes = [s for s in load("realworld") if s.images[0].uri.startswith("pkg://nibabel/")]
    env = gym.make("MedVQA-Volume-v0", samples=volumes)
    env.reset(seed=0, options={"sample_id": volumes[0].id})
    session = env.unwrapped.session
    n = session.images[0].num_slices
    assert n > 1 and session.images[0].spacing_mm is not None
    assert session.images[0].slice_spacing_mm == pytest.approx(2.0)  # the file's z voxel size
    _, _, _, _, info = env.step(
        '<tool_call>{"name": "overview", "arguments": {"count": 4}}</tool_call>'
    )
    assert session.views[1].montage == (0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1)
    _, _, _, _, info = env.step(
        '<tool_call>{"name": "scroll", "arguments": {"slice": 1}}</tool_call>'
    )
    assert session.views[2].slice_index == 1 and info["metrics"]["slices_viewed"] >= 5
    line = '{"name": "measure", "arguments": {"line_2d": [0, 0, 10, 0], "image_index": 2}}'
    _, _, _, _, info = env.step(f"<tool_call>{line}</tool_call>")
    assert " mm" in session.turns[-1].observation and not info["errors"]


def test_a_coronal_reformat_shows_the_nodule_across_its_slices() -> None:
    """set_plane through the nodule's row: the nodule spans its 2h + 1 slices in that plane."""
    (sample,) = [s for s in load("synthetic3d", split="test", num_samples=8) if s.answer == "yes"][
        :1
    ]
    env = gym.make("MedVQA-Volume-v0", samples=[sample])
    env.reset(seed=0)
    spec = Volume3DSpec.parse(sample.images[0].uri)
    assert spec.nodule is not None
    c, x, y, _, h = spec.nodule
    call = {"name": "set_plane", "arguments": {"plane": "coronal", "slice": y}}
    obs, _, terminated, _, _ = env.step(f"<tool_call>{json.dumps(call)}</tool_call>")
    assert not terminated and "coronal plane" in obs["text"]
    session = env.unwrapped.session
    view = session.views[-1]
    assert view.reformat == "coronal" and view.slice_index == y
    assert view.out_size[1] > view.out_size[0] * 0.5  # 2 mm slices stretched, not a flat band
    image = session.images[0]
    plane = render(
        image, view.model_copy(update={"flip_v": False, "out_size": (spec.size, spec.slices)})
    )
    column = plane[:, x, 0].astype(float)  # the nodule's column, every slice
    inside, outside = (
        column[c - h : c + h + 1].mean(),
        np.delete(column, range(c - h, c + h + 1)).mean(),
    )
    assert inside > outside + 40
    assert session.metrics["slices_viewed"] == 2  # the middle slice, then one coronal plane


def test_the_scroller_measures_a_nodule_in_the_coronal_plane() -> None:
    """size: overview, scroll to the slice, coronal plane through it, measure, answer."""
    samples = [s for s in load("synthetic3d", num_samples=16) if s.question_type == "size"]
    groups = GroupRunner(env_session_config("MedVQA-Volume-v0"), n=1, progress=False).run(
        samples, make_scripted_policy("scroller")
    )
    for g in groups:
        (t,) = g.trajectories
        calls = [c for turn in t.turns for c in turn.tool_calls]
        assert [c.name for c in calls] == ["overview", "scroll", "set_plane", "measure"]
        mm = float(calls[-1].text.rsplit(": ", 1)[1].removesuffix(" mm"))
        # the widest row of the coronal plane is the nodule's diameter, to a pixel or two
        assert abs(mm - g.sample.meta["diameter_mm"]) <= 2.5, (mm, g.sample.meta)
        assert t.reward_parts["accuracy"] == 1.0


@pytest.mark.parametrize("slices", [9, 64, 76, 77, 200, 256])
def test_the_scrollers_overview_ranges_never_step_over_a_nodule(slices: int) -> None:
    from medgym.tools.overview import evenly_spaced

    policy = make_scripted_policy("scroller")
    ranges = policy.ranges(slices)
    assert ranges[0][0] == 0 and ranges[-1][1] == slices - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    tiles = [k for first, last in ranges for k in evenly_spaced(last - first + 1, 16, first)]
    # nodules span 2h + 1 >= 5 slices: no gap between two looks may exceed 5
    assert max(b - a for a, b in itertools.pairwise(tiles)) <= 5
    assert len(ranges) == {9: 1, 64: 1, 76: 1, 77: 2, 200: 3, 256: 4}[slices]


def test_the_scroller_reads_a_200_slice_study_within_the_turn_budget() -> None:
    """Long studies: overviews of ranges find the nodule where one slice per turn could not."""
    samples = load("synthetic3d", num_samples=16, slices=200)
    groups = GroupRunner(env_session_config("MedVQA-Volume-v0"), n=1, progress=False).run(
        samples, make_scripted_policy("scroller")
    )
    for g in groups:
        (t,) = g.trajectories
        names = [c.name for turn in t.turns for c in turn.tool_calls]
        assert t.reward_parts["accuracy"] == 1.0, (g.sample.meta, names)
        assert 1 <= names.count("overview") <= 3 and len(t.turns) <= 8
