"""The medgym agent loop: verl's ``ToolAgentLoop`` state machine driven by an EpisodeSession.

Every model turn goes through :meth:`EpisodeSession.apply_turn`, so parsing, tool calls, budgets
and penalties are exactly the gym env's: a turn with neither a tool call nor an answer gets the
env's error observation and the episode goes on; an answer ends it. The session's observation
becomes the next message (role from the :class:`ModelProfile`), with one image per new view.

Token safety: an observation whose tokens would overflow ``rollout.response_length`` ends the
episode before it is merged, so a sequence is never cut inside image placeholder tokens; the
session's ``max_images`` caps images per trajectory and the profile's view size caps pixels.

EVR (``evr:`` in the registry entry, :class:`~medgym.agents.evr.EVRConfig` fields): each
generated turn is scored by its decision tokens' surprisal (:mod:`medgym.integrations.verl.evr`).
Reground mode runs here: a fired answer is withheld (its tokens stay as context with mask 0, as
in-process injected turns carry no token ids), the look-again instruction is appended as a user
turn and the episode goes on. Branch mode needs the TQ worker, which sets :attr:`tree`: a fired
turn hands copies of its pre-turn state to the tree, which resumes each as a new episode whose
first turn is resampled at ``branch_temperature``.

Register with ``actor_rollout_ref.rollout.agent.agent_loop_config_path`` pointing at
``training/configs/verl/agent_loop.yaml``; rows select it with ``agent_name: medgym_agent``.
The output's ``extra_fields`` carry ``medgym_trajectory`` (the trajectory as JSON: views in
original pixels for CCA, answer, metrics) and ``medgym_reward_parts``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
from verl.experimental.agent_loop.tool_agent_loop import AgentData, AgentState, ToolAgentLoop

from medgym.agents.evr import RolloutSignal, token_values
from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.conversation import hf_parts, reply_parts
from medgym.envs.profiles import DEFAULT_PROFILE
from medgym.envs.session import EpisodeSession, StepResult
from medgym.errors import ConfigError
from medgym.integrations.verl import AGENT_NAME
from medgym.integrations.verl.evr import (
    EVR_KEY,
    HOT_KEY,
    SIGNAL_KEY,
    BranchTree,
    copy_agent_data,
    engine_for,
    evr_config_from,
    fork_agent_data,
    new_counters,
    token_generation,
)
from medgym.integrations.verl.tools import SESSION_KEY, new_session

__all__ = [
    "SESSION_CONFIG_KEY",
    "STEP_KEY",
    "TRAJECTORY_KEY",
    "MedgymAgentLoop",
    "observation_message",
]

logger = logging.getLogger(__name__)

#: ``extra_fields`` key of the finished trajectory (JSON).
TRAJECTORY_KEY = "medgym_trajectory"
#: ``extra_fields`` key of the session config the episode ran with (JSON), for ``compute_score``.
SESSION_CONFIG_KEY = "medgym_session_config"
#: ``extra_fields`` key of the last step (internal, removed before output).
STEP_KEY = "_medgym_step"
#: ``extra_fields`` key of the answer reground mode withheld (internal).
_REJECTED_KEY = "_medgym_rejected"
_INTERNAL = (STEP_KEY, SIGNAL_KEY, HOT_KEY, _REJECTED_KEY)


def observation_message(session: EpisodeSession, step: StepResult) -> tuple[dict[str, Any], list]:
    """The chat message for a step's observation, and the new images in order.

    Built by :func:`~medgym.envs.conversation.reply_parts` (the gym conversation's and TRL's
    splitter) at the profile's placeholder.

    Raises:
        ConfigError: The observation has fewer placeholders than new views (images would be lost).
    """
    parts = reply_parts(step.observation, step.new_views, session.profile.image_placeholder)
    if sum(p["type"] == "image" for p in parts) != len(step.new_views):
        raise ConfigError(
            f"observation has {step.observation.count(session.profile.image_placeholder)} image "
            f"placeholder(s) for {len(step.new_views)} new view(s)"
        )
    role = session.turns[-1].role if session.turns else "user"
    if not step.new_views:
        return {"role": role, "content": step.observation}, []
    content = hf_parts(parts, session.pixels)
    images = [p["image"] for p in content if p["type"] == "image"]
    return {"role": role, "content": content}, images


def _own(key: str) -> bool:
    """Whether an ``extra_fields`` key is medgym's (kept out of verl's first-turn bookkeeping)."""
    return key.startswith(("medgym_", "_medgym_"))


class _LastOutput:
    """The server manager, remembering its last ``generate`` output (this episode's turn).

    An agent loop is built per episode, so the last output is the turn just generated: its
    token ids and log-probabilities exactly as the server returned them, for EVR and the
    session, whatever verl's token merge aligned around them.
    """

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self.last: Any = None

    async def generate(self, **kwargs: Any) -> Any:
        """Generate through the wrapped manager and keep the output."""
        self.last = await self._manager.generate(**kwargs)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def _plain(values: Any) -> Mapping[str, Any] | None:
    """Hydra/OmegaConf nodes as plain containers, at the edge (the core never sees them)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(values, DictConfig):
        return OmegaConf.to_container(values, resolve=True)  # type: ignore[return-value]
    return values


class MedgymAgentLoop(ToolAgentLoop):
    """``ToolAgentLoop`` whose turns are parsed and executed by an :class:`EpisodeSession`.

    Args:
        session_config: Keyword arguments of :class:`SessionConfig` (tools, budgets, ...).
        profile: Model profile name (box convention, view sizes, prompt layout).
        tool_server_url: Run the tools on this medgym tool server instead of in-process.
        evr: :class:`~medgym.agents.evr.EVRConfig` fields (``mode: reground`` or ``branch``);
            none or ``mode: off`` turns EVR off.
        **kwargs: verl's agent-loop arguments (trainer config, server manager, tokenizer, ...).
    """

    def __init__(
        self,
        *args: Any,
        session_config: dict[str, Any] | None = None,
        profile: str = DEFAULT_PROFILE,
        tool_server_url: str | None = None,
        evr: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._recorder = _LastOutput(self.server_manager)
        self.server_manager = self._recorder  # type: ignore[assignment]  # same interface
        self.session_config = SessionConfig.from_dict(_plain(session_config))
        self.profile = profile
        self.tool_server_url = tool_server_url
        self.evr = evr_config_from(evr)
        self.engine = engine_for(self.evr) if self.evr is not None else None
        #: Set by the TQ worker in branch mode: where fired turns send their forks.
        self.tree: BranchTree | None = None
        self._sample: Sample | None = None
        self._resume: AgentData | None = None

    def resume_from(self, snapshot: AgentData) -> None:
        """Run a fork: continue from ``snapshot`` (a pre-turn state) instead of the prompt."""
        self._resume = snapshot

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Run one episode of the row's sample (``extra_info.sample``)."""
        raw = (kwargs.get("extra_info") or {}).get("sample")
        if raw is None:
            raise ConfigError(
                f"agent {AGENT_NAME!r} needs extra_info.sample (the Sample as JSON); write the "
                "parquet with python -m medgym.integrations.verl.prepare"
            )
        self._sample = Sample.model_validate_json(raw) if isinstance(raw, str) else Sample(**raw)
        output = await super().run(sampling_params, **kwargs)
        session = output.extra_fields.pop(SESSION_KEY, None)
        rejected = output.extra_fields.get(_REJECTED_KEY)
        for key in _INTERNAL:
            output.extra_fields.pop(key, None)
        if self.engine is not None and isinstance(session, EpisodeSession):
            counters = output.extra_fields.setdefault(EVR_KEY, new_counters())
            if rejected is not None:
                accuracy = session.reward_parts.get("accuracy", 0.0)
                self.engine.stats.record_flip(rejected, session.answer, accuracy)
                counters["flipped"] = float(rejected != session.answer)
        if isinstance(session, EpisodeSession):
            traj = session.trajectory()
            output.extra_fields[TRAJECTORY_KEY] = traj.model_dump_json()
            output.extra_fields[SESSION_CONFIG_KEY] = json.dumps(session.config.to_dict())
            output.extra_fields["medgym_reward_parts"] = dict(session.reward_parts)
            output.extra_fields["medgym_metrics"] = dict(session.metrics)
        return output

    def _session(self, agent_data: AgentData) -> EpisodeSession:
        session = agent_data.extra_fields.get(SESSION_KEY)
        if not isinstance(session, EpisodeSession):
            if self._sample is None:
                raise ConfigError("MedgymAgentLoop.run sets the sample before the first turn")
            session = new_session(
                self._sample, self.session_config, self.profile, self.tool_server_url
            )
            agent_data.extra_fields[SESSION_KEY] = session
        return session

    async def _handle_pending_state(
        self, agent_data: AgentData, sampling_params: dict[str, Any]
    ) -> AgentState:
        """Tokenize the prompt (the tools are in medgym's system prompt), or resume a fork."""
        if self._resume is not None:
            snapshot, self._resume = self._resume, None
            vars(agent_data).update(vars(snapshot))
            return AgentState.GENERATING
        self._session(agent_data)
        agent_data._active_tool_schemas = None  # type: ignore[attr-defined]
        return await super()._handle_pending_state(agent_data, sampling_params)

    async def _handle_generating_state(
        self,
        agent_data: AgentData,
        sampling_params: dict[str, Any],
        ignore_termination: bool = False,
    ) -> AgentState:
        """Generate one turn with verl's own step, score it for EVR, apply it to the session.

        verl's ``ToolAgentLoop._handle_generating_state`` does the generation and its
        bookkeeping (tool-parser stop tokens, preemption counts, speculative-decoding counters,
        MoE routed experts, the token merge); its tool parsing is discarded, since the session
        parses the turn. Only medgym's own ``extra_fields`` are set aside around the call, so
        verl sees the first turn as its first.
        """
        session = self._session(agent_data)
        if agent_data.extra_fields.pop(HOT_KEY, False) and self.evr is not None:
            sampling_params = {**sampling_params, "temperature": self.evr.branch_temperature}
        before_turn = copy_agent_data(agent_data) if self.tree is not None else None
        generated_from = len(agent_data.response_mask)
        n_messages = len(agent_data.messages)
        ours = {k: agent_data.extra_fields.pop(k) for k in list(agent_data.extra_fields) if _own(k)}
        try:
            await super()._handle_generating_state(agent_data, sampling_params, True)
        finally:
            agent_data.extra_fields.update(ours)
        del agent_data.messages[n_messages:]  # verl's parse of the turn; the session's follows
        agent_data.tool_calls = []
        output = self._recorder.last
        tokenizer: Any = self.tokenizer  # verl annotates the class, not the instance
        ids = list(output.token_ids)
        if self.engine is not None and self.evr is not None:
            gen = token_generation(tokenizer, ids, output.log_probs)
            text = gen.text
            fired, signal_before = self._score(agent_data, gen)
            counters = agent_data.extra_fields[EVR_KEY]
            if (
                fired
                and self.evr.mode == "reground"
                and self.engine.should_reground(session, text, int(counters["regrounds"]))
                and await self._withhold(agent_data, session, text, generated_from)
            ):
                return AgentState.GENERATING
            if fired and self.tree is not None and before_turn is not None:
                turn = len(session.turns)
                counters["branches"] += self.tree.branch(
                    lambda j: fork_agent_data(
                        before_turn,
                        session=session.fork(f"{session.trajectory_id}.b{turn}-{j}"),
                        signal=signal_before.copy(),
                        session_key=SESSION_KEY,
                    )
                )
        else:
            text = tokenizer.decode(ids, skip_special_tokens=True)
        # tools and renders off the event loop: a worker runs many episodes concurrently
        step = await asyncio.to_thread(
            session.apply_turn, text, token_ids=ids, token_logprobs=output.log_probs
        )
        agent_data.turn_scores.append(step.reward)
        agent_data.messages.append({"role": "assistant", "content": text})
        if session.done:
            return AgentState.TERMINATED
        if len(agent_data.response_mask) >= self.response_length:
            logger.info("response budget of %d tokens spent; ending", self.response_length)
            return AgentState.TERMINATED
        if self.max_assistant_turns and agent_data.assistant_turns >= self.max_assistant_turns:
            return AgentState.TERMINATED  # verl's multi_turn caps, as ToolAgentLoop applies them
        if self.max_user_turns and agent_data.user_turns >= self.max_user_turns:
            return AgentState.TERMINATED
        agent_data.extra_fields[STEP_KEY] = step
        return AgentState.PROCESSING_TOOLS

    def _score(self, agent_data: AgentData, gen: Any) -> tuple[bool, RolloutSignal]:
        """EVR's verdict on a generated turn, and the rollout's signal from before it."""
        if self.engine is None or self.evr is None:
            raise ConfigError("_score needs EVR on")
        counters = agent_data.extra_fields.setdefault(EVR_KEY, new_counters())
        signal = agent_data.extra_fields.setdefault(SIGNAL_KEY, RolloutSignal())
        before = signal.copy()
        if token_values(gen, self.evr.source) is None:
            raise ConfigError(
                f"EVR ({self.evr.mode}) scores the log-probabilities of decision tokens, but the "
                "server returned none for this turn; set "
                "actor_rollout_ref.rollout.calculate_log_probs=true (vLLM and SGLang then return "
                "the sampled token's log-probability) or turn EVR off"
            )
        counters["turns_scored"] += 1
        fired = self.engine.score(signal, gen)
        counters["fires"] += fired
        return fired, before

    async def _withhold(
        self, agent_data: AgentData, session: EpisodeSession, text: str, generated_from: int
    ) -> bool:
        """Reground: keep the fired answer as context only and ask the model to look again.

        Returns:
            ``False`` (and nothing changed) when the look-again turn would overflow the
            response budget: the answer then stands.
        """
        if self.engine is None or self.evr is None:
            raise ConfigError("_withhold needs EVR on")
        generated_to = len(agent_data.response_mask)
        agent_data.messages.append({"role": "assistant", "content": text})
        message = {"role": "user", "content": self.evr.reground_text}
        if not await self._append_context(agent_data, message, []):
            agent_data.messages.pop()
            return False
        agent_data.extra_fields[_REJECTED_KEY] = self.engine.withhold(session, text)
        agent_data.extra_fields[EVR_KEY]["regrounds"] += 1
        # not trained on: the withheld answer's tokens become context (mask 0)
        for i in range(generated_from, generated_to):
            agent_data.response_mask[i] = 0
        agent_data.turn_scores.append(0.0)
        return True

    async def _handle_processing_tools_state(self, agent_data: AgentData) -> AgentState:
        """Append the session's observation (text and crops) to the token stream."""
        session = self._session(agent_data)
        step: StepResult = agent_data.extra_fields.pop(STEP_KEY)
        message, images = await asyncio.to_thread(observation_message, session, step)
        if not await self._append_context(agent_data, message, images):
            return AgentState.TERMINATED
        return AgentState.GENERATING

    async def _append_context(
        self, agent_data: AgentData, message: dict[str, Any], images: list[Any]
    ) -> bool:
        """Merge a context message (mask 0) into the token stream; ``False`` if it would overflow.

        An overflowing message is not merged at all, so a sequence never ends inside image
        placeholder tokens.
        """
        self._assert_mm_supported(bool(images))
        previous = list(agent_data.messages)
        updated = [*previous, message]
        merge, mask, logprobs = await self.ct_merge_context_msg(
            previous,
            updated,
            agent_data.prompt_ids,
            agent_data.response_mask,
            agent_data.response_logprobs or None,
            tools=None,  # type: ignore[arg-type]  # verl's own default: tools rendered already
        )
        if len(mask) >= self.response_length:
            logger.info("context message would overflow response_length; ending the episode")
            return False
        agent_data.messages = updated
        agent_data.prompt_ids = merge.token_ids
        agent_data.response_mask = mask
        if agent_data.response_logprobs:
            agent_data.response_logprobs = logprobs or []
        if images:
            agent_data.image_data = [*(agent_data.image_data or []), *images]
        agent_data.user_turns += 1
        return True
