"""One table of model turns through every adapter: the same parts, penalties and observations.

The gym env, the tool server's turn endpoint, the evaluation harness, TRL's environment and
reward, and verl's agent loop with ``compute_score`` (verl's real classes, a scripted server)
are thin adapters over the episode session. Each row of :data:`CASES` is played through each of
them, and what every adapter reports must equal what the gym env reports: the reward parts
(accuracy, format, penalty, total), each turn's penalty and each turn's observation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from medgym.core.parsing import parse_turn
from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig

PARTS = ("accuracy", "format", "penalty", "total")
REFERENCE = "right lower lobe"


def zoom(x1: float, y1: float, x2: float, y2: float) -> str:
    body = {"name": "zoom_in", "arguments": {"bbox_2d": [x1, y1, x2, y2]}}
    return f"<tool_call>{json.dumps(body)}</tool_call>"


ANSWER = f"<answer>{REFERENCE}</answer>"


@dataclass(frozen=True)
class Case:
    """A sample variant, a session config and the model's turns, in order."""

    id: str
    turns: tuple[str, ...]
    options: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    #: TRL runs a turn only as a tool-method call or as the final text: a non-final turn with
    #: no parsable call (a malformed call, prose) ends a TRL rollout by construction.
    trl: bool = True


CASES = [
    Case("good-answer", (f"<think>the lower lobe</think>{ANSWER}",)),
    Case("near-miss-closed", ("<answer>right lobe</answer>",)),
    Case("option-letter", ("<answer>B</answer>",), options=("left", REFERENCE, "both")),
    Case("bare-answer", (ANSWER,)),
    Case("empty-answer-then-answer", ("<answer> </answer>", ANSWER), trl=False),
    Case("zoom-then-answer", (zoom(0, 0, 224, 224), ANSWER)),
    Case("tool-error", (zoom(5000, 5000, 6000, 6000), ANSWER)),
    Case(
        "budget-error",
        (zoom(0, 0, 224, 224), zoom(0, 0, 100, 100), ANSWER),
        config={"max_images": 1},
    ),
    Case(
        "malformed-call",
        ('<tool_call>{"name": "zoom_in", "arguments": </tool_call>', ANSWER),
        trl=False,
    ),
    Case(
        "no-answer-truncated",
        ("I think so.", "Still thinking."),
        config={"max_turns": 2},
        trl=False,
    ),
]


@dataclass
class Outcome:
    """What one adapter reports for one case."""

    parts: dict[str, float]
    penalties: list[float]
    observations: list[str]

    def assert_same(self, other: Outcome, adapter: str) -> None:
        for key in PARTS:
            assert other.parts[key] == pytest.approx(self.parts[key], abs=1e-9), (adapter, key)
        assert other.penalties == pytest.approx(self.penalties, abs=1e-9), adapter
        assert other.observations == self.observations, adapter


@pytest.fixture(scope="module")
def base_sample() -> Sample:
    from medgym.data import load

    return load("synthetic", num_samples=1)[0]


def sample_for(base: Sample, case: Case) -> Sample:
    return base.model_copy(
        update={"answer": REFERENCE, "answer_type": "closed", "options": case.options}
    )


def config_for(case: Case) -> SessionConfig:
    return SessionConfig.from_dict({"max_turns": 4, **case.config})


def from_trajectory(traj: Any, parts: dict[str, float]) -> Outcome:
    model = [t for t in traj.turns if not t.injected]
    return Outcome(dict(parts), [t.penalty for t in model], [t.observation for t in model])


# ---------------------------------------------------------------------------- adapters
def run_gym(sample: Sample, case: Case) -> Outcome:
    from medgym.envs.env import MedVQAEnv
    from medgym.envs.spaces import sanitize_text

    cfg = config_for(case)
    env = MedVQAEnv(samples=[sample], **{k: v for k, v in cfg.to_dict().items()})
    env.reset(seed=0, options={"sample_id": sample.id})
    penalties, observations, rewards = [], [], []
    info: dict[str, Any] = {}
    for turn in case.turns:
        obs, reward, terminated, truncated, info = env.step(turn)
        penalties.append(info["penalty"])
        rewards.append(reward)
        session = env.session
        assert session is not None
        observations.append(session.turns[-1].observation)
        assert obs["text"] == sanitize_text(session.turns[-1].observation)
        if terminated or truncated:
            break
    parts = info["reward_parts"]
    assert sum(rewards) == pytest.approx(parts["total"])  # the steps add up to the episode
    return Outcome(parts, penalties, observations)


def run_server(sample: Sample, case: Case) -> Outcome:
    from fastapi.testclient import TestClient

    from medgym.serving.app import create_app
    from medgym.serving.settings import ServerSettings

    client = TestClient(create_app(ServerSettings()))
    history: list[str] = []
    penalties, observations = [], []
    body: dict[str, Any] = {}
    for turn in case.turns:
        resp = client.post(
            "/v1/turn",
            json={
                "sample": sample.model_dump(mode="json"), "config": config_for(case).to_dict(),
                "history": history, "text": turn,
            },
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        history.append(turn)
        penalties.append(body["penalty"])
        observations.append(body["observation"])
        if body["terminated"] or body["truncated"]:
            break
    return Outcome(body["reward_parts"], penalties, observations)


class ScriptPolicy:
    """Plays a fixed list of turns (the harness's policy for this table)."""

    name = "script"

    def __init__(self, turns: Sequence[str]) -> None:
        self.turns = list(turns)

    async def generate(self, session: Any) -> Any:
        from medgym.agents.policy import Generation

        return Generation(text=self.turns[sum(not t.injected for t in session.turns)])


def run_harness(sample: Sample, case: Case, out: Any) -> Outcome:
    from medgym.eval.harness import EvalConfig, run_eval

    cfg = EvalConfig(
        policy="scripted:direct", data="synthetic", n=1, ablations=(), resamples=0,
        session_options=config_for(case).to_dict(), progress=False,
    )  # fmt: skip
    result = run_eval(cfg, out, policy=ScriptPolicy(case.turns), samples=[sample], report=False)
    traj = result.groups["main"][0].trajectories[0]
    episode = json.loads((out / "episodes" / "main.jsonl").read_text().splitlines()[0])
    parts = {
        "accuracy": episode["score"], "format": episode["format"],
        "penalty": episode["penalty"], "total": episode["reward"],
    }  # fmt: skip
    return from_trajectory(traj, parts)


def run_trl(sample: Sample, case: Case) -> Outcome:
    """TRL's loop: a parsed call runs as the tool method, the last text is the completion."""
    from medgym.integrations.trl import SessionGroupReward, make_environment_factory

    factory = make_environment_factory([sample], config=config_for(case))
    envs = [factory(), factory()]  # GRPO needs a group of at least two
    replies: list[list[str]] = [[], []]
    for k, env in enumerate(envs):
        env.reset(sample_id=sample.id)
        for turn in case.turns[:-1]:
            (call,) = parse_turn(turn).calls
            parts = getattr(env, call.name)(**call.arguments)
            replies[k].append(
                "".join(
                    p["text"] if p["type"] == "text" else env.session.profile.image_placeholder
                    for p in parts
                )
            )
    completion = [{"role": "assistant", "content": case.turns[-1]}]
    reward = SessionGroupReward(num_generations=2, reward="episode")
    rewards = reward([completion, completion], environments=envs)
    rollout = reward.history[-1]["rollout_parts"][0]
    assert rewards[0] == pytest.approx(rollout["total"])
    traj = envs[0].session.trajectory()  # type: ignore[union-attr]
    outcome = from_trajectory(traj, rollout)
    assert replies[0] == outcome.observations[:-1]  # what the model saw is the session's reply
    return outcome


def run_verl(sample: Sample, case: Case, make_loop: Callable[..., Any], processor: Any) -> Outcome:
    """verl's agent loop (scripted server), then ``compute_score`` as verl's reward loop calls it."""
    from medgym.core.trajectory import Trajectory
    from medgym.integrations.verl.agent_loop import TRAJECTORY_KEY
    from medgym.integrations.verl.rewards import compute_score
    from medgym.integrations.verl.testing import ScriptedServer, row_kwargs

    server = ScriptedServer(processor.tokenizer, list(case.turns))
    row = row_kwargs(sample)

    async def go() -> Any:
        loop = make_loop(server, session_config=config_for(case).to_dict())
        return await loop.run({"temperature": 1.0}, **row)

    out = asyncio.run(go())
    extra_info = dict(row["extra_info"])
    extra_info.update(out.extra_fields.items())  # what verl's reward loop does (tool_extra_fields)
    response = processor.tokenizer.decode(out.response_ids, skip_special_tokens=True)
    score = compute_score("synthetic", response, sample.answer, extra_info)
    assert score["score"] == score["total"]
    traj = Trajectory.model_validate_json(out.extra_fields[TRAJECTORY_KEY])
    outcome = from_trajectory(traj, score)
    for obs in outcome.observations:  # the observations reached the model's context
        for piece in obs.split("<image>"):
            assert piece.strip() in response
    return outcome


def run_text(sample: Sample, case: Case) -> Outcome:
    """``compute_score`` on a one-turn text with no agent loop behind it."""
    from medgym.integrations.verl.rewards import compute_score

    info = {"sample": sample.model_dump_json()}
    score = compute_score(
        "synthetic", case.turns[0], sample.answer, info, session_config=config_for(case).to_dict()
    )
    return Outcome(score, [score["penalty"]], [""])


# ---------------------------------------------------------------------------- the table
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_adapter_scores_a_turn_table_alike(
    case: Case, base_sample: Sample, tmp_path: Any, make_loop: Any, tiny_processor: Any
) -> None:
    pytest.importorskip("verl")
    sample = sample_for(base_sample, case)
    gym = run_gym(sample, case)
    gym.assert_same(run_server(sample, case), "server")
    gym.assert_same(run_harness(sample, case, tmp_path), "harness")
    gym.assert_same(run_verl(sample, case, make_loop, tiny_processor), "verl")
    if case.trl:
        gym.assert_same(run_trl(sample, case), "trl")
    if len(case.turns) == 1:
        gym.assert_same(run_text(sample, case), "verl-text")


def test_the_table_means_what_it_says(base_sample: Sample) -> None:
    """The reference outcomes themselves (so a change that breaks every adapter alike fails)."""
    by_id = {c.id: run_gym(sample_for(base_sample, c), c) for c in CASES}
    fw, pen = SessionConfig().format_weight, SessionConfig().penalties
    assert by_id["good-answer"].parts["total"] == pytest.approx(1 + fw)
    assert by_id["bare-answer"].parts["format"] == 1.0  # no <think> needed
    assert by_id["near-miss-closed"].parts["accuracy"] == 0.0  # closed: exact match only
    assert by_id["option-letter"].parts["accuracy"] == 1.0
    assert by_id["tool-error"].penalties[0] == pytest.approx(pen.tool_error)
    assert by_id["tool-error"].parts["format"] == 0.0
    assert by_id["budget-error"].penalties == pytest.approx([0.0, pen.budget, 0.0])
    assert by_id["malformed-call"].penalties[0] == pytest.approx(pen.format_error)
    assert by_id["empty-answer-then-answer"].parts["total"] == pytest.approx(1 - pen.format_error)
    truncated = by_id["no-answer-truncated"]
    assert truncated.parts["accuracy"] == 0.0 and truncated.parts["format"] == 0.0
    assert "no tool call or answer" in truncated.observations[0]
    assert truncated.penalties == pytest.approx(
        [pen.format_error, pen.format_error + pen.no_answer]
    )
