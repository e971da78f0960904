"""Group rewards in verl's v1 trainer: a TransferQueue agent-loop worker that waits for all n.

verl's reward managers see one sample at a time, but medgym's group rewards (majority, FPL/HSR,
CCA, the fully label-free mix) need all n rollouts of a uid. The v1 worker's ``_run_prompt``
runs the n sessions of one uid concurrently and each session's ``_agent_loop_postprocess`` puts
its output into the TransferQueue. :class:`GroupRewardMixin` holds every session at that point
until all n have finished, scores the group once, sets ``reward_score`` (which makes verl skip
its per-sample reward loop) and ``reward_extra_info`` (parts, pseudo-label confidence), then lets
them all through. Exactly n outputs per prompt always reach the queue: when a session fails,
the whole group is marked failed and verl's replay buffer drops it.

EVR branch mode (an agent-loop registry entry with ``evr: {mode: branch}``): the n sessions of a
training uid do not each run an episode; they take the n leaves of one
:class:`~medgym.integrations.verl.evr.BranchTree`, grown by the medgym agent loops as their turns
fire. Validation uids run plain episodes. Each scored group is also written to
``medgym.metrics_dir`` (:mod:`medgym.integrations.verl.metrics`).

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

from medgym.agents.evr import EVRConfig, LeafBudget
from medgym.core.sample import Sample
from medgym.errors import ConfigError
from medgym.integrations.metrics import MetricsSink
from medgym.integrations.verl.evr import BranchTree, evr_config_from
from medgym.integrations.verl.metrics import group_record, rollout_metrics, sink_for
from medgym.integrations.verl.rewards import reward_extra_info, score_outputs
from medgym.rewards import GroupReward, make_group_reward

__all__ = [
    "GroupRewardMixin",
    "MedgymAgentLoopManagerTQ",
    "MedgymAgentLoopWorkerTQ",
    "branch_evr",
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


def branch_evr(agent_name: str | None) -> EVRConfig | None:
    """The EVR config of a registered agent loop when it is in branch mode, else ``None``."""
    from omegaconf import DictConfig, OmegaConf
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

    entry: Any = _agent_loop_registry.get(agent_name or "")
    raw: Any = entry.get("evr") if entry is not None else None
    if isinstance(raw, DictConfig):
        raw = OmegaConf.to_container(raw, resolve=True)
    cfg = evr_config_from(raw)
    return cfg if cfg is not None and cfg.mode == "branch" else None


@dataclass
class _Group:
    n: int
    outputs: dict[int, list[Any]] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False
    validate: bool = False
    tree: BranchTree | None = None


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
        validate = bool(trajectory["validate"])
        group = _Group(n=self._rollout_n(prompt, validate), validate=validate)
        evr = None if validate else branch_evr(prompt.get("agent_name"))
        if evr is not None:
            budget = LeafBudget(
                group.n,
                initial_rollouts=min(evr.initial_rollouts, group.n),
                num_branches=evr.num_branches,
            )
            group.tree = BranchTree(budget)
        self._groups()[uid] = group
        try:
            await super()._run_prompt(prompt, sampling_params, trajectory, trace)  # type: ignore[misc]
        finally:
            self._groups().pop(uid, None)

    async def _run_agent_loop(
        self,
        sampling_params: dict[str, Any],
        trajectory: dict[str, Any],
        *,
        agent_name: str,
        trace: bool = True,
        **kwargs: Any,
    ) -> Any:
        group = self._groups().get(kwargs.get("uid"))  # type: ignore[arg-type]
        try:
            if group is None or group.tree is None:
                return await super()._run_agent_loop(  # type: ignore[misc]
                    sampling_params, trajectory, agent_name=agent_name, trace=trace, **kwargs
                )

            async def run_leaf(leaf: int, snapshot: Any, tree: BranchTree) -> Any:
                loop = self._make_agent_loop(agent_name)
                loop.tree = tree
                if snapshot is not None:
                    loop.resume_from(snapshot)
                return await loop.run(sampling_params, **{**kwargs, "session_id": leaf})

            output = await group.tree.leaf(int(kwargs["session_id"]), run_leaf)
            return await self._agent_loop_postprocess(output, trajectory["validate"], **kwargs)
        except BaseException:
            if group is not None:
                group.failed = True
                group.done.set()
            raise

    def _make_agent_loop(self, agent_name: str) -> Any:
        """A registered agent loop, built as verl's ``AgentLoopWorker._run_agent_loop`` does."""
        import hydra
        from verl.experimental.agent_loop.agent_loop import (
            DictConfigWrap,
            ToolListWrap,
            _agent_loop_registry,
        )

        from medgym.integrations.verl.agent_loop import MedgymAgentLoop

        if agent_name not in _agent_loop_registry:
            raise ConfigError(
                f"agent loop {agent_name!r} is not registered; registered: "
                f"{sorted(_agent_loop_registry)}"
            )
        w: Any = self
        loop = hydra.utils.instantiate(
            config=_agent_loop_registry[agent_name],
            trainer_config=DictConfigWrap(config=w.config),
            server_manager=w.llm_client,
            tokenizer=w.tokenizer,
            processor=w.processor,
            hf_model_type=w.hf_model_type,
            dataset_cls=w.dataset_cls,
            data_config=DictConfigWrap(w.config.data),
            tools=ToolListWrap(w.tools),
        )
        if not isinstance(loop, MedgymAgentLoop):
            raise ConfigError(
                f"EVR branch mode needs the medgym agent loop; {agent_name!r} is "
                f"{type(loop).__name__}"
            )
        return loop

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
        fields = [o.extra_fields for o in finals]
        result = score_outputs(self.group_reward, fields, uid=uid, sample=sample, texts=texts)
        for i, out in enumerate(finals):
            out.reward_score = float(result.rewards[i])
            out.extra_fields["reward_extra_info"] = {
                **reward_extra_info(result, i),
                **rollout_metrics(out.extra_fields),
            }
        sink = self._sink()
        if sink is not None:
            sink.write(
                group_record(
                    uid,
                    result,
                    fields,
                    global_steps=int(group.kwargs.get("global_steps", 0) or 0),
                    validate=group.validate,
                    branched=group.tree is not None,
                )
            )

    def _sink(self) -> MetricsSink | None:
        if "_medgym_sink" not in self.__dict__:
            cfg: Any = self.config  # type: ignore[attr-defined]
            medgym = cfg.get("medgym") if hasattr(cfg, "get") else None
            path = (medgym or {}).get("metrics_dir")
            self.__dict__["_medgym_sink"] = sink_for(path) if path else None
        return self.__dict__["_medgym_sink"]

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
