from __future__ import annotations

import math

import pytest

from medgym.errors import ConfigError
from medgym.rewards import (
    GROUP_REWARDS,
    CompositeReward,
    GroupReward,
    GroupRewardResult,
    HashingEmbedder,
    MajorityVoteReward,
    make_group_reward,
)
from medgym.rewards.testing import make_group

TL = (0, (0.0, 0.0, 256.0, 256.0))


def test_registry_has_builtins() -> None:
    make_group_reward("majority")
    for name in ("majority", "fpl", "hsr", "cca", "accuracy", "format", "modality", "tool_use",
                 "judge", "medvr", "deepeyes", "label_free", "medix_r1"):  # fmt: skip
        assert name in GROUP_REWARDS
    assert isinstance(make_group_reward("cca", grid=32), GroupReward)
    with pytest.raises(ConfigError, match="did you mean `majority`"):
        make_group_reward("majorty")


def test_composite_from_weights() -> None:
    g = make_group(["yes", "yes", "no"], [[TL], [TL], [TL]])
    r = make_group_reward({"majority": 1.0, "cca": 0.5})
    res = r.reward(g)
    assert res.rewards == [1.5, 1.5, 0.0]
    assert res.parts["majority"] == [1.0, 1.0, 0.0]
    assert res.parts["cca.tool"] == [1.0, 1.0, 0.0]
    assert res.diagnostics["majority"]["pseudo_label"] == "yes"


def test_composite_from_config_with_options_and_skip() -> None:
    cfg = {
        "weights": {"majority": 1.0, "hsr": 2.0},
        "options": {"hsr": {"embedder": HashingEmbedder(dim=32), "pseudo": "majority"}},
        "min_confidence": 0.5,
    }
    r = make_group_reward(cfg)
    assert r.reward(make_group(["liver", "liver", "spleen"])).rewards[0] == 3.0
    skipped = r.reward(make_group(["liver", "spleen", "kidney"]))
    assert skipped.rewards == [0.0, 0.0, 0.0] and skipped.diagnostics["skipped"] is True


@pytest.mark.parametrize(
    "spec",
    [{}, {"weights": {}}, {"majority": "heavy"},
     {"weights": {"majority": 1}, "options": {"cca": {}}}, ["majority"], {"majority": math.nan}],
    ids=["empty", "empty-weights", "non-number", "options-for-missing", "list", "nan-weight"],
)  # fmt: skip
def test_bad_composite_configs(spec: object) -> None:
    with pytest.raises(ConfigError):
        make_group_reward(spec)  # type: ignore[arg-type]


def test_result_validation() -> None:
    with pytest.raises(ConfigError, match="finite"):
        GroupRewardResult([math.nan])
    with pytest.raises(ConfigError, match="part `x`"):
        GroupRewardResult([1.0], {"x": [1.0, 2.0]})


def test_composite_rejects_wrong_length_component() -> None:
    class Broken:
        name = "broken"

        def reward(self, group):  # type: ignore[no-untyped-def]
            return GroupRewardResult([1.0])

    comp = CompositeReward({"ok": (1.0, MajorityVoteReward()), "broken": (1.0, Broken())})
    with pytest.raises(ConfigError, match="returned 1 rewards for 2"):
        comp.reward(make_group(["a1", "a1"]))


_NO_MODEL = ("judge",)  # needs a judge model; covered in test_judge.py


def _reward(name: str) -> GroupReward:
    try:
        return make_group_reward(name, embedder="hashing")
    except (ConfigError, TypeError):
        return make_group_reward(name)


@pytest.mark.parametrize("name", sorted(set(GROUP_REWARDS) - set(_NO_MODEL)))
def test_every_group_reward_takes_an_empty_group(name: str) -> None:
    """cca, label_free and medvr crashed on reshape of size 0 (issue 18, D10)."""
    res = _reward(name).reward(make_group([], []))
    assert res.rewards == []


@pytest.mark.parametrize("name", sorted(set(GROUP_REWARDS) - set(_NO_MODEL)))
def test_every_group_reward_takes_a_lone_surrogate(name: str) -> None:
    """A model can emit "\\ud800"; hsr, fpl, label_free crashed encoding it (issue 18, D10)."""
    res = _reward(name).reward(make_group(["\ud800", "left\ud800", "left"], [[TL], [TL], [TL]]))
    assert len(res.rewards) == 3 and all(math.isfinite(r) for r in res.rewards)
