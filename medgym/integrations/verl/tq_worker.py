"""Group rewards in verl's v1 trainer: a TransferQueue agent-loop worker that waits for all n.

verl's reward managers see one sample at a time, but medgym's group rewards (majority, FPL/HSR,
CCA, the fully label-free mix) need all n rollouts of a uid. The v1 worker's ``_run_prompt``
runs the n sessions of one uid concurrently and each session's ``_agent_loop_postprocess`` puts
its output into the TransferQueue. :class:`GroupRewardMixin` holds every session at that point
until all n have finished, scores the group once, sets ``reward_score`` (which makes verl skip
its per-sample reward loop) and ``reward_extra_info`` (parts, pseudo-label confidence), then lets
them all through. Exactly n outputs per prompt always reach the queue: when a session fails,
the whole group is marked failed and verl's replay buffer drops it.

The v0 trainer (``trainer.use_v1=false``) is not supported.

Config (``medgym.reward`` in the hydra config): a group-reward name or ``{name: weight}``
mapping for :func:`medgym.rewards.make_group_reward`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medgym.core.sample import Sample
from medgym.errors import ConfigError
from medgym.integrations.verl.rewards import reward_extra_info, score_outputs
from medgym.rewards import GroupReward, make_group_reward

__all__ = [
    "GroupRewardMixin",
    "MedgymAgentLoopManagerTQ",
    "MedgymAgentLoopWorkerTQ",
    "reward_from_config",
]

logger = logging.getLogger(__name__)


def reward_from_config(config: Any) -> GroupReward:
    """The group reward named by ``config.medgym.reward`` (default ``label_free``)."""
    from omegaconf import DictConfig, OmegaConf

    medgym = config.get("medgym") if hasattr(config, "get") else None
    spec: Any = (medgym or {}).get("reward", "label_free")
    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    if not isinstance(spec, (str, Mapping)):
        raise ConfigError(f"medgym.reward must be a name or a {{name: weight}} map; got {spec!r}")
    return make_group_reward(spec)


@dataclass
class _Group:
    n: int
    outputs: dict[int, list[Any]] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False


class GroupRewardMixin:
    """Holds the n sessions of a uid at postprocess until the group can be scored together.

    Mixed in before verl's ``AgentLoopWorkerTQ``; needs ``self.config``, ``self.tokenizer``
    and sets ``self.group_reward`` on first use.
    """

    group_reward: GroupReward | None = None

    def _groups(self) -> dict[str, _Group]:
        groups = self.__dict__.get("_medgym_groups")
        if groups is None:
            groups = self.__dict__["_medgym_groups"] = {}
        return groups

    def _rollout_n(self, prompt: Mapping[str, Any], validate: bool) -> int:
        cfg = self.config.actor_rollout_ref.rollout  # type: ignore[attr-defined]
        return int(prompt.get("__rollout_n__", cfg.val_kwargs.n if validate else cfg.n))

    async def _run_prompt(
        self, prompt: dict, sampling_params: dict, trajectory: dict, trace: bool = False
    ) -> None:
        uid = prompt["uid"]
        self._groups()[uid] = _Group(n=self._rollout_n(prompt, bool(trajectory["validate"])))
        try:
            await super()._run_prompt(prompt, sampling_params, trajectory, trace)  # type: ignore[misc]
        finally:
            self._groups().pop(uid, None)

    async def _run_agent_loop(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._run_agent_loop(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            group = self._groups().get(kwargs.get("uid"))  # type: ignore[arg-type]
            if group is not None:
                group.failed = True
                group.done.set()
            raise

    async def _agent_loop_postprocess(self, output: Any, validate: bool, **kwargs: Any) -> Any:
        group = self._groups().get(kwargs.get("uid"))  # type: ignore[arg-type]
        if group is None:
            return await super()._agent_loop_postprocess(output, validate, **kwargs)  # type: ignore[misc]
        outputs = output if isinstance(output, list) else [output]
        group.outputs[int(kwargs["session_id"])] = outputs
        group.kwargs = kwargs
        if len(group.outputs) == group.n and not group.failed:
            self._score_group(str(kwargs["uid"]), group)
            group.done.set()
        await group.done.wait()
        if group.failed:
            raise ConfigError(f"uid {kwargs['uid']}: a sibling rollout failed; group dropped")
        return await super()._agent_loop_postprocess(output, validate, **kwargs)  # type: ignore[misc]

    def _score_group(self, uid: str, group: _Group) -> None:
        if self.group_reward is None:
            self.group_reward = reward_from_config(self.config)  # type: ignore[attr-defined]
        finals = [group.outputs[i][-1] for i in sorted(group.outputs)]
        extra = group.kwargs.get("extra_info") or {}
        sample = Sample.model_validate_json(extra["sample"]) if extra.get("sample") else None
        texts = [self._decode(o) for o in finals]
        result = score_outputs(
            self.group_reward, [o.extra_fields for o in finals], uid=uid, sample=sample, texts=texts
        )
        for i, out in enumerate(finals):
            out.reward_score = float(result.rewards[i])
            out.extra_fields["reward_extra_info"] = reward_extra_info(result, i)

    def _decode(self, output: Any) -> str:
        ids = [t for t, m in zip(output.response_ids, output.response_mask, strict=False) if m]
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))  # type: ignore[attr-defined]


def _classes() -> tuple[type, type]:
    import ray
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ

    # verl decorates the worker with @ray.remote; subclass the plain class underneath
    base = getattr(AgentLoopWorkerTQ, "__ray_actor_class__", AgentLoopWorkerTQ)
    worker = type("MedgymAgentLoopWorkerTQ", (GroupRewardMixin, base), {"__module__": __name__})

    class Manager(AgentLoopManagerTQ):
        """verl's TQ manager with the medgym group-reward worker."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.agent_loop_workers_class = ray.remote(worker)

    Manager.__name__ = Manager.__qualname__ = "MedgymAgentLoopManagerTQ"
    Manager.__module__ = __name__
    return worker, Manager


MedgymAgentLoopWorkerTQ, MedgymAgentLoopManagerTQ = _classes()
