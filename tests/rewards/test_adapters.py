from __future__ import annotations

import pytest

from medgym.errors import ConfigError
from medgym.rewards import score_batch, score_uid_group, trl_reward_fn
from medgym.rewards.adapters import completion_text
from medgym.rewards.testing import make_group


def _a(x: str) -> str:
    return f"<think>t</think><answer>{x}</answer>"


def test_completion_text_forms() -> None:
    assert completion_text("abc") == "abc"
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1"}]
    assert completion_text(chat) == "a1"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "image"}]}]
    assert completion_text(parts) == "x"
    assert completion_text(None) == ""


def test_trl_fn_groups_by_prompt_and_reads_columns() -> None:
    fn = trl_reward_fn({"accuracy": 1.0, "majority": 1.0})
    prompts = ["p1", "p1", "p2", "p2"]
    completions = [_a("yes"), _a("yes"), _a("liver"), _a("spleen")]
    out = fn(completions=completions, prompts=prompts, answer=["yes", "yes", None, None])
    assert out == [2.0, 2.0, 1.0, 0.0]
    assert fn.__name__ == "medgym_composite"


def test_trl_fn_chat_completions_and_bad_items() -> None:
    fn = trl_reward_fn("majority")
    comps = [
        [{"role": "assistant", "content": _a("no")}],
        12,
        [{"role": "assistant", "content": _a("no")}],
    ]
    assert fn(completions=comps, prompts=["p"] * 3) == [1.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="prompts"):
        fn(completions=comps, prompts=["p"])


def test_verl_batch_scatters_by_uid() -> None:
    uids = ["u1", "u2", "u1", "u2"]
    sols = [_a("yes"), _a("a1"), _a("no"), _a("a1")]
    rewards, results = score_batch("accuracy", uids, sols, ["yes", None, "yes", None])
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    assert set(results) == {"u1", "u2"}
    with pytest.raises(ConfigError, match="ground_truths has 1"):
        score_batch("accuracy", uids, sols, ["yes"])


def test_uid_group_from_trajectories() -> None:
    g = make_group(["yes", "yes"], [[(0, (0, 0, 10, 10))], [(0, (0, 0, 10, 10))]], label="yes")
    res = score_uid_group("medvr", trajectories=g.trajectories, sample=g.sample)
    assert res.rewards == [3.0, 3.0]
    res2 = score_uid_group("cca", trajectories=g.trajectories, ground_truth="yes")
    assert res2.rewards == [1.0, 1.0]
    with pytest.raises(ConfigError, match="trajectories"):
        score_uid_group("majority")
