from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from medgym.rewards import (
    CCAReward,
    FPLReward,
    HashingEmbedder,
    HSRReward,
    MajorityVoteReward,
    make_group_reward,
    normalize_answer,
    token_f1,
)
from medgym.rewards.testing import make_group

EMB = HashingEmbedder(dim=64)
REWARDS = {
    "majority": MajorityVoteReward(),
    "fpl": FPLReward(EMB, radius=0.7),
    "hsr": HSRReward(EMB),
    "cca": CCAReward(grid=16),
    "label_free": make_group_reward("label_free", embedder=EMB),
}
BOUNDS = {"majority": (0, 1), "fpl": (0, 1), "hsr": (0, 1), "cca": (0, 1), "label_free": (0, 3)}

answer = st.one_of(
    st.sampled_from(["yes", "no", "Yes.", "left lung", "LLL", "left lower lobe", "liver", ""]),
    st.none(),
    st.text(max_size=12),
)
coord = st.floats(min_value=-50, max_value=600, allow_nan=False)
box = st.tuples(coord, coord, st.floats(1, 300), st.floats(1, 300)).map(
    lambda b: (0, (b[0], b[1], b[0] + b[2], b[1] + b[3]))
)
rollout = st.tuples(answer, st.lists(box, max_size=3))


@settings(max_examples=60, deadline=None)
@given(
    rollouts=st.lists(rollout, min_size=1, max_size=8),
    perm_seed=st.randoms(use_true_random=False),
    name=st.sampled_from(sorted(REWARDS)),
    label=st.sampled_from([None, "yes", "left lower lobe"]),
)
def test_group_rewards_order_invariant_and_bounded(rollouts, perm_seed, name, label) -> None:  # type: ignore[no-untyped-def]
    reward = REWARDS[name]
    answers = [a for a, _ in rollouts]
    regions = [r for _, r in rollouts]
    base = reward.reward(make_group(answers, regions, label=label)).rewards
    order = list(range(len(rollouts)))
    perm_seed.shuffle(order)
    shuffled = reward.reward(
        make_group([answers[i] for i in order], [regions[i] for i in order], label=label)
    ).rewards
    assert [base[i] for i in order] == shuffled
    lo, hi = BOUNDS[name]
    assert all(math.isfinite(r) and lo <= r <= hi for r in base)


@settings(max_examples=100, deadline=None)
@given(a=st.text(max_size=40), b=st.text(max_size=40))
def test_scores_never_crash_and_are_bounded(a: str, b: str) -> None:
    assert isinstance(normalize_answer(a), str)
    f = token_f1(a, b)
    assert 0.0 <= f <= 1.0
    assert f == token_f1(b, a)
