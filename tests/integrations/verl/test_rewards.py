"""Group rewards on DataProto uid groups, then verl's own GRPO advantage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("verl")

import torch

from medgym.core.sample import Sample
from medgym.core.trajectory import Trajectory, Turn
from medgym.errors import ConfigError
from medgym.integrations.verl.agent_loop import TRAJECTORY_KEY
from medgym.integrations.verl.rewards import (
    assign_group_rewards,
    compute_score,
    reward_extra_info,
    score_outputs,
)


class _Tok:
    """Decodes ids 1.. to the texts it was built with (one token per text)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def decode(self, ids: torch.Tensor, skip_special_tokens: bool = True) -> str:
        return "".join(self.texts[int(i) - 1] for i in ids)


def _batch(answers: list[str], uids: list[str], extra: dict[str, Any] | None = None) -> Any:
    from verl import DataProto

    n, width = len(answers), 4
    responses = torch.zeros((n, width), dtype=torch.long)
    responses[:, 0] = torch.arange(1, n + 1)
    mask = torch.zeros((n, width), dtype=torch.long)
    mask[:, 0] = 1
    nt = {"uid": np.array(uids, dtype=object), **(extra or {})}
    return DataProto.from_dict(
        tensors={"responses": responses, "response_mask": mask}, non_tensors=nt
    )


def test_majority_groups_then_grpo_advantage() -> None:
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    answers = ["yes", "yes", "no", "no", "no", "yes"]
    uids = ["a", "a", "a", "b", "b", "b"]
    texts = [f"<answer>{a}</answer>" for a in answers]
    data = _batch(answers, uids)
    metrics = assign_group_rewards(data, "majority", tokenizer=_Tok(texts))
    rm = data.batch["rm_scores"]
    assert rm[:, 0].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert rm[:, 1:].abs().sum() == 0
    assert metrics["reward/mean"] == pytest.approx(4 / 6)
    adv, _ = compute_grpo_outcome_advantage(
        rm, data.batch["response_mask"].float(), np.array(uids, dtype=object)
    )
    first = adv[:, 0]
    assert first[0] > 0 > first[2] and first[3] > 0 > first[5]
    assert first[:3].sum().abs() < 1e-4 and first[3:].sum().abs() < 1e-4


def _traj(answer: str, box: tuple[float, float, float, float], i: int) -> Trajectory:
    from medgym.core.trajectory import ToolCallRecord

    call = ToolCallRecord(name="zoom_in", ok=True, view_index=1, bbox_px=box, image_index=0)
    return Trajectory(
        id=f"t{i}",
        sample_id="s",
        group_id="s",
        answer=answer,
        terminated=True,
        turns=[
            Turn(index=0, action="", tool_calls=[call]),
            Turn(index=1, action=f"<answer>{answer}</answer>", answer=answer),
        ],
    )


def test_trajectories_from_the_agent_loop_feed_cca(samples: list[Sample]) -> None:
    boxes = [(0, 0, 100, 100)] * 3 + [(900, 900, 1000, 1000)]
    trajs = [_traj("yes" if i < 3 else "no", b, i) for i, b in enumerate(boxes)]
    fields = [{TRAJECTORY_KEY: t.model_dump_json()} for t in trajs]
    res = score_outputs("label_free", fields, uid="s")
    assert res.rewards[0] > res.rewards[3]
    info = reward_extra_info(res, 0)
    assert info and all(isinstance(v, float) for v in info.values())


def test_batch_with_trajectories_needs_no_tokenizer() -> None:
    trajs = [_traj(a, (0, 0, 50, 50), i) for i, a in enumerate(["yes", "yes", "no"])]
    data = _batch(
        ["", "", ""],
        ["u"] * 3,
        {TRAJECTORY_KEY: np.array([t.model_dump_json() for t in trajs], dtype=object)},
    )
    assign_group_rewards(data, "majority")
    assert data.batch["rm_scores"][:, 0].tolist() == [1.0, 1.0, 0.0]


def test_missing_texts_and_trajectories_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trajectories"):
        score_outputs("majority", [{}, {}], uid="u")
    with pytest.raises(ConfigError, match="tokenizer"):
        assign_group_rewards(_batch(["a"], ["u"]), "majority")


@pytest.mark.parametrize(
    ("text", "truth", "acc"),
    [
        pytest.param("<think>x</think><answer>yes</answer>", "yes", 1.0, id="right"),
        pytest.param("<answer>no</answer>", "yes", 0.0, id="wrong"),
        pytest.param("<answer>yes</answer>", None, 0.0, id="unlabelled"),
    ],
)
def test_compute_score(text: str, truth: str | None, acc: float) -> None:
    out = compute_score("synthetic", text, truth)
    assert out["accuracy"] == acc
    assert out["score"] == pytest.approx(acc + 0.1 * out["format"])
