"""The teacher policy: zooms on the region the question names (read from the text)."""

from __future__ import annotations

import asyncio

import pytest

from medgym.agents import GroupRunner, TeacherPolicy
from medgym.agents.policy import run_episode
from medgym.agents.scripted import question_region
from medgym.data import load
from medgym.envs.config import SessionConfig
from medgym.envs.session import EpisodeSession


@pytest.mark.parametrize(
    "question, expected",
    [
        (
            "Is there a nodule inside the region x 41–55%, y 18–32% of the image?",
            (0.41, 0.18, 0.55, 0.32),
        ),
        ("the upper-left zone of the image (x 0–33%, y 0–33%)", (0.0, 0.0, 0.33, 0.33)),
        ("the lower-right zone (x 67-100%, y 67-100%)", (0.67, 0.67, 1.0, 1.0)),
        ("Is it in the left or the right half of the image?", None),
        ("region x 55–41%, y 18–32%", None),
        ("region x 0–300%, y 0–10%", None),
    ],
    ids=["roi", "zone", "ascii-dash", "no-region", "reversed", "out-of-range"],
)
def test_question_region(question: str, expected) -> None:
    assert question_region(question) == expected


def test_teacher_zooms_on_the_named_region_and_contains_the_evidence() -> None:
    samples = load("synthetic", split="train", num_samples=12, image_size=512,
                   families=("presence", "count", "shape", "kind"))  # fmt: skip
    for sample in samples:
        session = EpisodeSession(sample, config=SessionConfig(max_turns=2), profile="tiny-vlm")
        asyncio.run(run_episode(TeacherPolicy(), session))
        t = session.trajectory()
        assert t.answer == sample.answer
        box = t.turns[0].tool_calls[0].bbox_px
        region = question_region(sample.question)
        w = sample_width = 512
        assert box == pytest.approx(tuple(v * w for v in region), abs=1.0), sample_width
        ev = sample.evidence[0].bbox_px
        # the named zone or region holds the evidence (the teacher's look is never wasted)
        assert box[0] - 1 <= ev[0] and box[1] - 1 <= ev[1]
        assert ev[2] <= box[2] + 1 and ev[3] <= box[3] + 1


def test_teacher_answers_at_once_without_a_region() -> None:
    samples = load("synthetic", split="train", num_samples=4, families=("side",))
    groups = GroupRunner(SessionConfig(max_turns=2), n=1, progress=False).run(
        samples, TeacherPolicy()
    )
    for g in groups:
        (t,) = g.trajectories
        assert len(t.turns) == 1 and t.answer == g.sample.answer


def test_a_misdirected_teacher_looks_elsewhere_and_answers_what_it_sees() -> None:
    """misdirect: for about that share of zone questions the zoom is another of the nine zones
    and the answer is whether a nodule's centre lies in it; otherwise the usual teacher."""
    from medgym.agents.tiny_vlm import TINY_TASK
    from medgym.data.synthetic_layout import zones

    samples = load("synthetic", split="train", num_samples=48, **TINY_TASK)
    missed = 0
    for sample in samples:
        session = EpisodeSession(sample, config=SessionConfig(max_turns=2), profile="tiny-vlm")
        asyncio.run(run_episode(TeacherPolicy(misdirect=0.5), session))
        t = session.trajectory()
        box = t.turns[0].tool_calls[0].bbox_px
        named = sample.meta["query"]["region_px"]
        if box == pytest.approx(named, abs=4.0):
            assert t.answer == sample.answer
            continue
        missed += 1
        zone = next(z for z in zones(512, 512) if box == pytest.approx(z.box_px, abs=4.0))
        assert question_region(zone.text) != question_region(sample.question)
        centres = [
            ((f["bbox_px"][0] + f["bbox_px"][2]) / 2, (f["bbox_px"][1] + f["bbox_px"][3]) / 2)
            for f in sample.meta["findings"]
            if f["kind"] == "nodule"
        ]
        inside = any(box[0] <= x < box[2] and box[1] <= y < box[3] for x, y in centres)
        assert t.answer == ("yes" if inside else "no")
    assert 12 <= missed <= 36  # about half of 48


def test_misdirect_must_be_a_share() -> None:
    from medgym.agents.tiny_vlm import WarmStartConfig
    from medgym.errors import ConfigError

    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match=r"misdirect must be in \[0, 1\)"):
            TeacherPolicy(misdirect=bad)
        with pytest.raises(ConfigError, match=r"misdirect must be in \[0, 1\)"):
            WarmStartConfig(misdirect=bad)
    assert WarmStartConfig().key() != WarmStartConfig(misdirect=0.3).key()


def test_the_warm_starts_misdirected_demonstrations_repeat_on_every_build() -> None:
    """The teacher's draw is seeded by the trajectory id: the warm start's sessions must have
    fixed ids, or one cache key would stand for a different model on each build."""
    from medgym.agents.tiny_vlm.warm_start import _teacher_sessions

    def looks() -> list:
        sessions = _teacher_sessions(24, 0, "train", "synthetic", False, misdirect=0.5)
        return [s.trajectory().turns[0].tool_calls[0].bbox_px for s in sessions]

    assert looks() == looks()
