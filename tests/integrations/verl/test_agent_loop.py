"""The medgym agent loop on verl's real ToolAgentLoop machinery, with a scripted server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("verl")


from medgym.core.sample import Sample
from medgym.core.trajectory import Trajectory
from medgym.errors import ConfigError
from medgym.integrations.verl.agent_loop import TRAJECTORY_KEY, MedgymAgentLoop
from medgym.integrations.verl.prepare import sample_to_row
from medgym.integrations.verl.testing import ScriptedServer, agent_loop_kwargs

REPO = Path(__file__).resolve().parents[3]

ZOOM = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 224, 224]}}</tool_call>'


@pytest.fixture()
def episode(tiny_processor: Any, make_loop: Any, row_kwargs: Any, samples: list[Sample]) -> Any:
    """``episode(texts, response_length=4096, server=None, **loop_kw)`` on samples[0]."""

    def run(
        texts: list[str],
        response_length: int = 4096,
        server: ScriptedServer | None = None,
        **loop_kw: Any,
    ) -> tuple[Any, ScriptedServer]:
        srv = server or ScriptedServer(tiny_processor.tokenizer, texts)

        async def go() -> Any:
            # verl's agent loop binds to the running event loop when it is built
            loop = make_loop(srv, response_length, **loop_kw)
            return await loop.run({"temperature": 1.0}, **row_kwargs(samples[0]))

        return asyncio.run(go()), srv

    return run


def test_multi_turn_zoom_puts_the_crop_in_the_next_prompt(
    tiny_processor: Any, samples: list[Sample], episode: Any
) -> None:
    out, server = episode([ZOOM, "<answer>left</answer>"])
    assert len(server.calls) == 2
    assert [len(c["images"]) for c in server.calls] == [1, 2]
    pad = tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert server.calls[1]["prompt_ids"].count(pad) > server.calls[0]["prompt_ids"].count(pad)
    assert len(out.multi_modal_data["images"]) == 2
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    assert traj.answer == "left" and traj.terminated
    assert traj.views[1].bbox_px == pytest.approx((0, 0, 1024, 1024))
    assert out.extra_fields["medgym_reward_parts"]["accuracy"] == 1.0
    # the crop's tokens are context (mask 0), the two generated turns are trained on (mask 1)
    assert 0 in out.response_mask and out.response_mask[0] == 1 and out.response_mask[-1] == 1
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs)
    assert len(out.extra_fields["turn_scores"]) == 2


def test_turn_without_call_or_answer_gets_the_env_error_and_goes_on(
    tiny_processor: Any, samples: list[Sample], episode: Any
) -> None:
    out, server = episode(["I think so.", "<answer>right</answer>"])
    assert len(server.calls) == 2
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    assert "no tool call or answer" in traj.turns[0].observation
    assert traj.answer == "right"
    assert out.extra_fields["turn_scores"][0] < 0
    assert "no tool call or answer" in tiny_processor.tokenizer.decode(out.response_ids)


def test_turn_budget_truncates(tiny_processor: Any, samples: list[Sample], episode: Any) -> None:
    out, server = episode([ZOOM], session_config={"max_turns": 2})
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    assert len(server.calls) == 2 and traj.truncated and traj.answer is None


def test_overflow_stops_before_an_image_is_cut(
    tiny_processor: Any, samples: list[Sample], episode: Any
) -> None:
    out, server = episode([ZOOM, "<answer>left</answer>"], response_length=48)
    assert len(server.calls) == 1
    assert len(out.multi_modal_data["images"]) == 1
    pad = tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert pad not in out.response_ids


def test_row_without_sample_is_refused(make_loop: Any) -> None:
    async def go() -> None:
        await make_loop(None).run({}, raw_prompt=[], extra_info={})

    with pytest.raises(ConfigError, match=r"extra_info\.sample"):
        asyncio.run(go())


def test_stock_tool_agent_loop_runs_the_yaml_tools(
    tiny_processor: Any, samples: list[Sample], verl_config: Any
) -> None:
    """verl's own ToolAgentLoop with the BaseTool adapters: the crop reaches the next prompt."""
    from verl.experimental.agent_loop.agent_loop import ToolListWrap
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from verl.tools.tool_registry import initialize_tools_from_config

    tools = initialize_tools_from_config(str(REPO / "tools" / "verl_zoom.yaml"))
    server = ScriptedServer(tiny_processor.tokenizer, [ZOOM, "<answer>left</answer>"])
    row = sample_to_row(samples[0], 0, data_source="synthetic")
    prompt = [row["prompt"][0], {"role": "user", "content": "What side?"}]

    async def go() -> Any:
        common = agent_loop_kwargs(verl_config(), tiny_processor)
        loop = ToolAgentLoop(server_manager=server, tools=ToolListWrap(tools), **common)
        return await loop.run(
            {}, raw_prompt=prompt, extra_info={}, tools_kwargs=row["extra_info"]["tools_kwargs"]
        )

    out = asyncio.run(go())
    assert len(server.calls) == 2
    assert len(server.calls[1]["images"]) == 1
    assert out.extra_fields["tool_rewards"] == [0.0]


AGENT_LOOPS = yaml.safe_load(
    (REPO / "training" / "configs" / "verl" / "agent_loop.yaml").read_text()
)


@pytest.mark.parametrize("entry", AGENT_LOOPS, ids=[e["name"] for e in AGENT_LOOPS])
def test_registry_entries_instantiate_through_hydra(
    tiny_processor: Any, verl_config: Any, entry: dict[str, Any]
) -> None:
    """Each shipped agent_loop.yaml entry, built the way verl's worker builds it."""
    import hydra
    from verl.experimental.agent_loop.agent_loop import ToolListWrap

    common = agent_loop_kwargs(verl_config(), tiny_processor)

    async def go() -> Any:
        return hydra.utils.instantiate(
            config=entry, server_manager=None, tools=ToolListWrap([]), **common
        )

    loop = asyncio.run(go())
    assert isinstance(loop, MedgymAgentLoop)
    assert loop.session_config.tools == ("zoom_in", "crop", "reground")
    assert loop.session_config.penalties.tool_error == 0.05
    mode = (entry.get("evr") or {}).get("mode")
    assert (loop.evr.mode if loop.evr else None) == mode


def test_staleness_fields_from_the_server_are_kept(
    tiny_processor: Any, samples: list[Sample], episode: Any
) -> None:
    class StepServer(ScriptedServer):
        async def generate(self, **kw: Any) -> Any:
            out = await super().generate(**kw)
            out.extra_fields = {"min_global_steps": 3, "max_global_steps": 3 + len(self.calls)}
            return out

    server = StepServer(tiny_processor.tokenizer, [ZOOM, "<answer>left</answer>"])
    out, _ = episode([], server=server)
    assert out.extra_fields["min_global_steps"] == 3
    assert out.extra_fields["max_global_steps"] == 5


def test_tools_on_a_tool_server_give_the_in_process_episode(
    tiny_processor: Any, episode: Any, serve_app: Any, tmp_path: Any
) -> None:
    """The agent loop with tool_server_url against a real uvicorn: same crops, same texts."""
    import numpy as np

    pytest.importorskip("fastapi")
    from medgym.serving import ServerSettings, create_app

    url = serve_app(create_app(ServerSettings(store_dir=tmp_path / "store")))
    bad = (
        '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [900, 900, 990, 990]}}</tool_call>'
    )
    texts = [ZOOM, bad, "<answer>left</answer>"]
    local, _ = episode(texts)
    remote, _ = episode(texts, tool_server_url=url)
    lt, rt = (
        Trajectory.model_validate_json(o.extra_fields[TRAJECTORY_KEY]) for o in (local, remote)
    )
    assert [t.observation for t in rt.turns] == [t.observation for t in lt.turns]
    assert rt.views == lt.views and rt.answer == lt.answer == "left"
    assert rt.metrics == lt.metrics and rt.metrics["tool_errors"] == 1
    assert remote.response_ids == local.response_ids
    images = [np.asarray(o.multi_modal_data["images"][1]) for o in (local, remote)]
    assert np.array_equal(*images)


def test_verl_bookkeeping_of_every_turn_is_kept(
    tiny_processor: Any, samples: list[Sample], episode: Any
) -> None:
    """verl's own generation step runs: staleness tags of the first turn, the latest
    max_global_steps, speculative-decoding counters summed over turns, preemptions, MoE
    routed experts (a copy of verl's private method had dropped the last three)."""
    outputs = [
        {"extra_fields": {"global_steps": 7, "min_global_steps": 7, "max_global_steps": 7,
                          "spec_num_draft_tokens": 3}, "num_preempted": 1,
         "routed_experts": [[1]] * 64},
        {"extra_fields": {"global_steps": 9, "max_global_steps": 9, "spec_num_draft_tokens": 4},
         "num_preempted": 2, "routed_experts": [[2]] * 64},
    ]  # fmt: skip
    server = ScriptedServer(tiny_processor.tokenizer, [ZOOM, "<answer>left</answer>"],
                            outputs=outputs)  # fmt: skip
    out, _ = episode([], server=server)
    extra = out.extra_fields
    assert extra["global_steps"] == 7 and extra["min_global_steps"] == 7  # the first turn's
    assert extra["max_global_steps"] == 9  # the latest
    assert extra["spec_num_draft_tokens"] == 7  # summed
    assert out.metrics.num_preempted == 3
    assert out.routed_experts is not None and out.routed_experts[0] == [2]  # the last turn's
    traj = Trajectory.model_validate_json(extra[TRAJECTORY_KEY])
    assert traj.answer == "left" and len(traj.turns) == 2


def test_verl_multi_turn_caps_end_the_episode(
    tiny_processor: Any,
    samples: list[Sample],
    episode: Any,
    verl_config: Any,
    make_loop: Any,
    row_kwargs: Any,
) -> None:
    """rollout.multi_turn.max_assistant_turns caps episodes, as in verl's ToolAgentLoop."""
    from medgym.integrations.verl.testing import agent_loop_kwargs

    cfg = verl_config()
    cfg.actor_rollout_ref.rollout.multi_turn.max_assistant_turns = 1
    server = ScriptedServer(tiny_processor.tokenizer, [ZOOM, "<answer>left</answer>"])

    async def go() -> Any:
        loop = MedgymAgentLoop(server_manager=server, **agent_loop_kwargs(cfg, tiny_processor))
        return await loop.run({"temperature": 1.0}, **row_kwargs(samples[0]))

    out = asyncio.run(go())
    assert len(server.calls) == 1
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    assert len(traj.turns) == 1 and traj.answer is None
