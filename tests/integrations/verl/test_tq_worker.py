"""The group-reward worker: n sessions of a uid are held, scored together, then released."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

pytest.importorskip("verl")

from omegaconf import OmegaConf

from medgym.errors import ConfigError
from medgym.integrations.verl.tq_worker import (
    GroupRewardMixin,
    MedgymAgentLoopManagerTQ,
    MedgymAgentLoopWorkerTQ,
    reward_from_config,
)


class _Out:
    def __init__(self, ids: list[int]) -> None:
        self.response_ids, self.response_mask = ids, [1] * len(ids)
        self.reward_score: float | None = None
        self.extra_fields: dict[str, Any] = {}


class _Tok:
    words: ClassVar[dict[int, str]] = {1: "<answer>yes</answer>", 2: "<answer>no</answer>"}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.words[i] for i in ids)


class _Base:
    """What verl's TQ worker does around the hooks: n concurrent sessions, postprocess each."""

    def __init__(self, answers: list[int], fail: int | None = None) -> None:
        self.answers, self.fail = answers, fail
        self.queued: list[tuple[int, float | None]] = []
        self.config = OmegaConf.create(
            {
                "actor_rollout_ref": {"rollout": {"n": len(answers), "val_kwargs": {"n": 1}}},
                "medgym": {"reward": "majority"},
            }
        )
        self.tokenizer = _Tok()

    async def _run_prompt(
        self, prompt: dict, sampling_params: dict, trajectory: dict, trace: bool = False
    ) -> None:
        tasks = [
            asyncio.create_task(
                self._run_agent_loop(
                    sampling_params, trajectory, agent_name="x", uid=prompt["uid"], session_id=i
                )
            )
            for i in range(len(self.answers))
        ]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_agent_loop(
        self, sampling_params: dict, trajectory: dict, *, agent_name: str, **kwargs: Any
    ) -> Any:
        i = kwargs["session_id"]
        await asyncio.sleep(0.01 * (len(self.answers) - i))
        if i == self.fail:
            raise RuntimeError("server died")
        return await self._agent_loop_postprocess(_Out([self.answers[i]]), False, **kwargs)

    async def _agent_loop_postprocess(self, output: Any, validate: bool, **kwargs: Any) -> None:
        self.queued.append((kwargs["session_id"], output.reward_score))


class _Worker(GroupRewardMixin, _Base):
    pass


def test_all_n_are_scored_together() -> None:
    w = _Worker([1, 1, 2])
    asyncio.run(w._run_prompt({"uid": "u"}, {}, {"validate": False}))
    assert sorted(w.queued) == [(0, 1.0), (1, 1.0), (2, 0.0)]
    assert w._groups() == {}


def test_a_failed_sibling_drops_the_group() -> None:
    w = _Worker([1, 1, 2], fail=1)
    asyncio.run(w._run_prompt({"uid": "u"}, {}, {"validate": False}))
    assert w.queued == []


def test_reward_from_config() -> None:
    cfg = OmegaConf.create({"medgym": {"reward": {"majority": 1.0, "format": 0.1}}})
    assert reward_from_config(cfg) is not None
    with pytest.raises(ConfigError):
        reward_from_config(OmegaConf.create({"medgym": {"reward": 3}}))


def test_real_classes_subclass_verl() -> None:
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ

    assert issubclass(MedgymAgentLoopManagerTQ, AgentLoopManagerTQ)
    assert GroupRewardMixin in MedgymAgentLoopWorkerTQ.__mro__


def test_the_configured_manager_class_builds_medgym_workers() -> None:
    """What verl's TaskRunnerV1 does with rollout.agent.agent_loop_manager_class."""
    from pathlib import Path

    from verl.utils.import_utils import load_class_from_fqn

    base = (
        Path(__file__).resolve().parents[3] / "training" / "configs" / "verl" / "medgym_base.yaml"
    )
    fqn = OmegaConf.load(base).actor_rollout_ref.rollout.agent.agent_loop_manager_class
    cls = load_class_from_fqn(fqn, "AgentLoopManager")
    cfg = OmegaConf.create({"actor_rollout_ref": {"rollout": {}, "model": {}}})
    manager = cls(cfg, llm_client=None)
    assert manager.agent_loop_workers_class.__ray_actor_class__ is MedgymAgentLoopWorkerTQ
