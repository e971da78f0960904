"""EVR on verl: the signal, per-trajectory state, forks of verl's ``AgentData`` and branch trees.

**Signal.** verl's vLLM server returns only the sampled token's log-probability (it forces
``logprobs=0``), so on verl EVR scores the *surprisal* ``-log p(sampled token)`` of each decision
token (:func:`token_generation`; :class:`EVRConfig` ``source="auto"`` falls back to it when no
entropies come). The alternative, a second scoring call with ``prompt_logprobs=k`` for a
top-k truncated entropy, doubles the server round trips of every turn and is still truncated;
the surprisal is free and its expectation over the sampled token is the entropy. The default
quantile threshold makes the scale irrelevant. ``rollout.calculate_log_probs`` must be on
(:func:`check_rollout_config`).

**Reground** runs inside :class:`~medgym.integrations.verl.agent_loop.MedgymAgentLoop` alone.
**Branch** needs all n rollouts of a uid in one place: :class:`BranchTree`, driven by the TQ
worker (:mod:`medgym.integrations.verl.tq_worker`), grows the tree under
:class:`~medgym.agents.evr.LeafBudget`'s rule and hands the n leaves to verl's n sessions.

The threshold history and the process-wide stats live in one :class:`EVREngine` per config and
process (:func:`engine_for`), shared by every episode of that Ray worker.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from medgym.agents.entropy import TokenGeneration
from medgym.agents.evr import EVRConfig, EVREngine
from medgym.agents.evr.tree import BranchTree
from medgym.errors import ConfigError

__all__ = [
    "EVR_KEY",
    "BranchTree",
    "check_rollout_config",
    "copy_agent_data",
    "engine_for",
    "evr_config_from",
    "new_counters",
    "token_generation",
]

logger = logging.getLogger(__name__)

#: ``extra_fields`` key of a trajectory's EVR counters (kept in the output).
EVR_KEY = "medgym_evr"
#: ``extra_fields`` keys of the running signal and the hot flag (internal, removed at the end).
SIGNAL_KEY = "_medgym_signal"
HOT_KEY = "_medgym_hot"

_ENGINES: dict[EVRConfig, EVREngine] = {}


def evr_config_from(raw: Mapping[str, Any] | EVRConfig | None) -> EVRConfig | None:
    """The :class:`EVRConfig` of plain (YAML/hydra) values; ``None`` when EVR is off."""
    if raw is None or isinstance(raw, EVRConfig):
        cfg = raw
    else:
        try:
            cfg = EVRConfig(**dict(raw))
        except TypeError as e:
            raise ConfigError(f"bad evr settings {dict(raw)!r}: {e}") from e
    return None if cfg is None or cfg.mode == "off" else cfg


def engine_for(config: EVRConfig) -> EVREngine:
    """This process's engine for ``config`` (threshold history and stats persist across calls)."""
    engine = _ENGINES.get(config)
    if engine is None:
        engine = _ENGINES[config] = EVREngine(config)
    return engine


def new_counters(forked: bool = False) -> dict[str, float]:
    """Zeroed per-trajectory EVR counters (``extra_fields["medgym_evr"]``)."""
    return {"turns_scored": 0.0, "fires": 0.0, "regrounds": 0.0, "branches": 0.0,
            "forked": float(forked)}  # fmt: skip


def token_generation(tokenizer: Any, token_ids: list[int], log_probs: Any) -> TokenGeneration:
    """A generated verl turn as EVR sees it: text, per-token pieces and log-probabilities."""
    ids = list(token_ids)
    return TokenGeneration(
        text=str(tokenizer.decode(ids, skip_special_tokens=True)),
        token_ids=ids,
        logprobs=[float(v) for v in log_probs] if log_probs else None,
        pieces=list(tokenizer.batch_decode([[t] for t in ids], skip_special_tokens=True)),
    )


def copy_agent_data(agent_data: Any) -> Any:
    """An independent copy of verl's ``AgentData`` (lists and dicts copied, the rest shared).

    Images, token lists' items and the session are shared; every container verl or medgym
    appends to is copied, so the copy and the original grow apart.
    """
    new = copy.copy(agent_data)
    for key, value in vars(agent_data).items():
        if isinstance(value, list):
            setattr(new, key, list(value))
        elif isinstance(value, dict):
            setattr(new, key, dict(value))
    return new


def fork_agent_data(snapshot: Any, *, session: Any, signal: Any, session_key: str) -> Any:
    """A fork of a pre-turn ``snapshot``: own session and signal, new request id, hot next turn."""
    new = copy_agent_data(snapshot)
    new.request_id = uuid.uuid4().hex
    new.extra_fields[session_key] = session
    new.extra_fields[SIGNAL_KEY] = signal
    new.extra_fields[HOT_KEY] = True
    new.extra_fields[EVR_KEY] = new_counters(forked=True)
    return new


def check_rollout_config(rollout: Any, evr: EVRConfig | None) -> None:
    """Refuse rollout settings under which EVR would silently never fire.

    Raises:
        ConfigError: EVR is on but ``calculate_log_probs`` is off (the server then returns no
            log-probabilities), or branch mode with ``n < 2``.
    """
    if evr is None:
        return
    if not rollout.get("calculate_log_probs", False):
        raise ConfigError(
            f"EVR ({evr.mode}) scores token log-probabilities; set "
            "actor_rollout_ref.rollout.calculate_log_probs=true (it is false)"
        )
    if evr.mode == "branch" and int(rollout.get("n", 1)) < 2:
        raise ConfigError(
            f"EVR branch mode grows a tree of rollout.n leaves; need n >= 2, got {rollout.n}"
        )
