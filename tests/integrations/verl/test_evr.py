"""EVR on verl: reground inside the agent loop, branch trees through verl's own TQ worker code."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

pytest.importorskip("verl")

from medgym.agents.evr import EVRConfig
from medgym.core.sample import Sample
from medgym.core.trajectory import Trajectory
from medgym.errors import ConfigError
from medgym.integrations.verl.agent_loop import TRAJECTORY_KEY
from medgym.integrations.verl.evr import EVR_KEY, check_rollout_config
from medgym.integrations.verl.metrics import read_records, summarize
from medgym.integrations.verl.testing import ScriptedServer, offline_tq_worker

ZOOM = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 224, 224]}}</tool_call>'
#: Fires on any turn whose decision tokens' mean surprisal is above 1 nat.
SURE, UNSURE = -0.1, -3.0
EVR = {"threshold_kind": "absolute", "threshold": 1.0, "gamma": 0.0, "window": 1}


def _run(make_loop: Any, row_kwargs: Any, sample: Sample, server: ScriptedServer, **kw: Any) -> Any:
    async def go() -> Any:
        loop = make_loop(server, **kw)
        return await loop.run({"temperature": 1.0}, **row_kwargs(sample))

    return asyncio.run(go())


def test_reground_withholds_an_uncertain_answer_and_looks_again(
    tiny_processor: Any, make_loop: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    tok = tiny_processor.tokenizer
    texts = ["<answer>right</answer>", ZOOM, "<answer>left</answer>"]
    server = ScriptedServer(tok, texts, logprob=[UNSURE, SURE, SURE])
    out = _run(make_loop, row_kwargs, samples[0], server, evr={"mode": "reground", **EVR})

    assert len(server.calls) == 3
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    assert traj.answer == "left" and out.extra_fields["medgym_reward_parts"]["accuracy"] == 1.0
    injected = [t for t in traj.turns if t.injected]
    assert [t.action for t in injected] == ["<answer>right</answer>", ""]
    assert "look again" in injected[1].observation
    assert out.extra_fields[EVR_KEY] == {
        "turns_scored": 3.0, "fires": 1.0, "regrounds": 1.0, "branches": 0.0, "forked": 0.0,
        "flipped": 1.0,
    }  # fmt: skip
    # the withheld answer stays in the sequence as context, not trained on
    first = tok.encode(texts[0], add_special_tokens=False)
    assert out.response_ids[: len(first)] == first
    assert not any(out.response_mask[: len(first)])
    assert out.response_mask[-1] == 1
    assert "look again" in tok.decode(out.response_ids)
    assert len(server.calls[1]["prompt_ids"]) > len(server.calls[0]["prompt_ids"]) + len(first)
    assert len(out.extra_fields["turn_scores"]) == 3
    assert not any(k.startswith("_medgym") for k in out.extra_fields)


def test_reground_at_most_max_regrounds_times(
    tiny_processor: Any, make_loop: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    server = ScriptedServer(tiny_processor.tokenizer, ["<answer>right</answer>"], logprob=UNSURE)
    out = _run(make_loop, row_kwargs, samples[0], server, evr={"mode": "reground", **EVR})
    assert len(server.calls) == 2
    counters = out.extra_fields[EVR_KEY]
    assert counters["fires"] == 2 and counters["regrounds"] == 1 and counters["flipped"] == 0
    assert Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY]).answer == "right"


def test_reground_needs_room_for_a_tool_call(
    tiny_processor: Any, make_loop: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    server = ScriptedServer(tiny_processor.tokenizer, ["<answer>right</answer>"], logprob=UNSURE)
    out = _run(
        make_loop, row_kwargs, samples[0], server,
        evr={"mode": "reground", **EVR}, session_config={"max_turns": 1},
    )  # fmt: skip
    assert len(server.calls) == 1 and out.extra_fields[EVR_KEY]["regrounds"] == 0


def test_reground_that_would_overflow_the_response_budget_lets_the_answer_stand(
    tiny_processor: Any, make_loop: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    server = ScriptedServer(tiny_processor.tokenizer, ["<answer>right</answer>"], logprob=UNSURE)
    out = _run(
        make_loop, row_kwargs, samples[0], server, response_length=30,
        evr={"mode": "reground", **EVR},
    )  # fmt: skip
    assert len(server.calls) == 1
    counters = out.extra_fields[EVR_KEY]
    assert counters["fires"] == 1 and counters["regrounds"] == 0
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    assert traj.answer == "right" and not any(t.injected for t in traj.turns)
    assert all(out.response_mask)


def test_without_logprobs_evr_refuses_with_the_setting_to_change(
    tiny_processor: Any, make_loop: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    """A server that returns no log-probabilities cannot drive EVR: the episode fails, named."""
    server = ScriptedServer(tiny_processor.tokenizer, ["<answer>right</answer>"], logprob=None)
    with pytest.raises(ConfigError, match="calculate_log_probs=true"):
        _run(make_loop, row_kwargs, samples[0], server, evr={"mode": "reground", **EVR})
    assert len(server.calls) == 1


@pytest.mark.parametrize(
    ("rollout", "evr", "match"),
    [
        ({"calculate_log_probs": False, "n": 4}, "reground", "calculate_log_probs=true"),
        ({"calculate_log_probs": True, "n": 1}, "branch", "n >= 2"),
    ],
    ids=["no-logprobs", "branch-n1"],
)
def test_rollout_settings_that_would_silence_evr_are_refused(
    rollout: dict[str, Any], evr: str, match: str
) -> None:
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match=match):
        check_rollout_config(OmegaConf.create(rollout), EVRConfig(mode=evr))  # type: ignore[arg-type]
    check_rollout_config(OmegaConf.create(rollout), None)


# --------------------------------------------------------------------------- branch mode
BRANCH_ENTRY = {
    "name": "medgym_agent_branch",
    "_target_": "medgym.integrations.verl.agent_loop.MedgymAgentLoop",
    "_convert_": "all",
    "session_config": {"tools": ["zoom_in"], "max_turns": 4},
    "evr": {"mode": "branch", "initial_rollouts": 2, "num_branches": 2, **EVR},
}


def _tree_server(tok: Any, fail_hot: bool = False) -> ScriptedServer:
    """Roots zoom unsure, then answer 'left'; resampled (hot) turns answer 'right'."""

    def text(call: dict[str, Any]) -> str:
        if call["sampling_params"]["temperature"] == EVRConfig().branch_temperature:
            if fail_hot:
                raise RuntimeError("inference server died")
            return "<answer>right</answer>"
        return ZOOM if len(call["images"]) == 1 else "<answer>left</answer>"

    return ScriptedServer(tok, text, logprob=lambda t: UNSURE if t == ZOOM else SURE)


def _prompt(row_kwargs: Any, sample: Sample, agent: str) -> dict[str, Any]:
    return {
        "uid": "u0", "agent_name": agent, "index": 0, "global_steps": 7,
        "data_source": "synthetic", **row_kwargs(sample),
    }  # fmt: skip


def _run_prompt(worker: Any, prompt: dict[str, Any], validate: bool = False) -> None:
    trajectory = {"step": 7, "sample_index": 0, "rollout_n": 0, "validate": validate}
    asyncio.run(worker._run_prompt(prompt, {"temperature": 1.0}, trajectory))


def test_branch_tree_runs_through_verls_tq_worker(
    tiny_processor: Any, verl_config: Any, row_kwargs: Any, samples: list[Sample], tmp_path: Any
) -> None:
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    cfg = verl_config(medgym={"reward": {"accuracy": 1.0}, "metrics_dir": str(tmp_path)})
    server = _tree_server(tiny_processor.tokenizer)
    with offline_tq_worker(cfg, server, tiny_processor, agent_loops=[BRANCH_ENTRY]) as (w, tq):
        _run_prompt(w, _prompt(row_kwargs, samples[0], BRANCH_ENTRY["name"]))

    assert tq.status["u0"] == ["running", "finished"]
    assert sorted(tq.rows) == [f"u0_{i}_0" for i in range(4)]  # exactly n leaves
    rows = [tq.rows[f"u0_{i}_0"] for i in range(4)]
    trajs = [Trajectory.model_validate_json(r["extra_fields"][TRAJECTORY_KEY]) for r in rows]
    # roots 0, 1 zoomed (unsure) and answered left; each forked once at turn 0 into leaves 2, 3
    assert [t.answer for t in trajs] == ["left", "left", "right", "right"]
    assert [t.parent_id for t in trajs[:2]] == [None, None]
    assert sorted(str(t.parent_id) for t in trajs[2:]) == sorted([trajs[0].id, trajs[1].id])
    assert [t.branch_turn for t in trajs[2:]] == [0, 0]
    assert len(server.calls) == 6
    assert sum(c["sampling_params"]["temperature"] == 1.3 for c in server.calls) == 2
    # a fork shares its root's prompt and resamples the turn that fired
    index = {t.id: i for i, t in enumerate(trajs)}
    for fork in (2, 3):
        root = rows[index[str(trajs[fork].parent_id)]]
        assert torch.equal(rows[fork]["prompts"], root["prompts"])
        assert not torch.equal(rows[fork]["responses"][:4], root["responses"][:4])
    evr = [r["extra_fields"][EVR_KEY] for r in rows]
    assert [e["branches"] for e in evr] == [1, 1, 0, 0]
    assert [e["forked"] for e in evr] == [0, 0, 1, 1]
    # scored as one group, then GRPO advantages over the leaves
    scores = [float(r["rm_scores"].sum()) for r in rows]
    assert scores == [1.0, 1.0, 0.0, 0.0]
    assert rows[0]["extra_fields"]["reward_extra_info"]["evr/fires"] == 1.0
    width = max(len(r["responses"]) for r in rows)
    rm, mask = torch.zeros(4, width), torch.zeros(4, width)
    for i, r in enumerate(rows):
        mask[i, : len(r["responses"])] = 1
        rm[i, len(r["responses"]) - 1] = scores[i]
    adv, _ = compute_grpo_outcome_advantage(rm, mask, np.array(["u0"] * 4, dtype=object))
    assert (adv[:2].max(1).values > 0).all() and (adv[2:].min(1).values < 0).all()
    # the metrics sink got one group record
    (step,) = summarize(read_records(tmp_path))
    assert step["step"] == 7 and step["groups"] == 1
    assert step["evr/branches"] == 0.5 and step["evr/flip_rate"] == 1.0
    assert step["evr/fire_rate"] == pytest.approx(2 / 6)


def test_a_failed_branch_drops_the_whole_group(
    tiny_processor: Any, verl_config: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    cfg = verl_config(medgym={"reward": "majority"})
    server = _tree_server(tiny_processor.tokenizer, fail_hot=True)
    with offline_tq_worker(cfg, server, tiny_processor, agent_loops=[BRANCH_ENTRY]) as (w, tq):
        _run_prompt(w, _prompt(row_kwargs, samples[0], BRANCH_ENTRY["name"]))
    assert tq.status["u0"] == ["running", "failure"]
    assert tq.rows == {}


def test_validation_uids_do_not_branch(
    tiny_processor: Any, verl_config: Any, row_kwargs: Any, samples: list[Sample]
) -> None:
    cfg = verl_config(medgym={"reward": "majority"})
    server = _tree_server(tiny_processor.tokenizer)
    with offline_tq_worker(cfg, server, tiny_processor, agent_loops=[BRANCH_ENTRY]) as (w, tq):
        _run_prompt(w, _prompt(row_kwargs, samples[0], BRANCH_ENTRY["name"]), validate=True)
    assert sorted(tq.rows) == ["u0_0_0", "u0_1_0"]  # val_kwargs.n plain episodes
    assert all(c["sampling_params"]["temperature"] == 1.0 for c in server.calls)
