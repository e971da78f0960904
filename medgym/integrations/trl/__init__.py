"""TRL integration: GRPO on medgym sessions (``pip install medgym[trl]``).

- :func:`make_environment_factory`: ``GRPOTrainer(environment_factory=...)`` over the episode
  session (tool calls, crops, budgets and penalties as in the gym env).
- :class:`SessionGroupReward`: a reward function scoring whole groups of sessions with any
  :mod:`medgym.rewards` group reward, label-free ones included.
- :func:`prepare_processor`: response schema and tool-aware chat template for Qwen2.5-VL.
- :func:`build_trainer`, :func:`demo_train`: the run of ``training/run_trl.py``.

EVR (entropy-guided branching) is not supported on this path: TRL samples each rollout
independently. Use the verl integration or :mod:`medgym.agents` for EVR.
"""

from __future__ import annotations

from medgym.integrations.trl.environment import (
    MedGymToolEnv,
    finish_episode,
    make_environment_factory,
    tool_env_class,
)
from medgym.integrations.trl.metrics import MetricsSink, tensorboard_available
from medgym.integrations.trl.rewards import SessionGroupReward, check_whole_groups
from medgym.integrations.trl.template import (
    HERMES_RESPONSE_SCHEMA,
    TOOL_CHAT_TEMPLATE,
    prepare_processor,
)
from medgym.integrations.trl.train import (
    MedGymArguments,
    build_dataset,
    build_trainer,
    default_grpo_config,
    demo_train,
)

__all__ = [
    "HERMES_RESPONSE_SCHEMA",
    "TOOL_CHAT_TEMPLATE",
    "MedGymArguments",
    "MedGymToolEnv",
    "MetricsSink",
    "SessionGroupReward",
    "build_dataset",
    "build_trainer",
    "check_whole_groups",
    "default_grpo_config",
    "demo_train",
    "finish_episode",
    "make_environment_factory",
    "prepare_processor",
    "tensorboard_available",
    "tool_env_class",
]
