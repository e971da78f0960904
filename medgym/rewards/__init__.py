"""Rewards: per-sample scores, embedders, an LLM judge, and label-free group rewards.

Group rewards score the n rollouts of one sample together and are looked up by name::

    from medgym.rewards import make_group_reward
    reward = make_group_reward({"hsr": 1.0, "cca": 0.5})
    result = reward.reward(group)  # GroupRewardResult(rewards, parts, diagnostics)
"""

from __future__ import annotations

from medgym.core.normalize import DEFAULT_SYNONYMS, SynonymTable
from medgym.rewards.adapters import score_batch, score_uid_group, trl_reward_fn
from medgym.rewards.cca import CCAReward
from medgym.rewards.embedders import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
)
from medgym.rewards.fpl import FPLReward, fpl_label
from medgym.rewards.group import (
    GROUP_REWARDS,
    CompositeReward,
    GroupReward,
    GroupRewardResult,
    make_group_reward,
    register_group_reward,
)
from medgym.rewards.hsr import HSRReward, hsr_scores
from medgym.rewards.judge import JudgeReward, LLMJudge
from medgym.rewards.majority import MajorityVoteReward
from medgym.rewards.persample import AccuracyReward, FormatReward, ModalityReward, ToolUseReward
from medgym.rewards.presets import AnswerToolReward, MediXR1Reward
from medgym.rewards.pseudo import PseudoLabel, group_answers, majority_label
from medgym.rewards.scoring import (
    MAX_ANSWER_CHARS,
    clean_answer,
    closed_match,
    format_score,
    modality_score,
    normalize_answer,
    resolve_option,
    score_answer,
    token_f1,
    token_recall,
)

__all__ = [
    "DEFAULT_SYNONYMS",
    "GROUP_REWARDS",
    "MAX_ANSWER_CHARS",
    "AccuracyReward",
    "AnswerToolReward",
    "CCAReward",
    "CachedEmbedder",
    "CompositeReward",
    "Embedder",
    "FPLReward",
    "FormatReward",
    "GroupReward",
    "GroupRewardResult",
    "HSRReward",
    "HashingEmbedder",
    "JudgeReward",
    "LLMJudge",
    "MajorityVoteReward",
    "MediXR1Reward",
    "ModalityReward",
    "OpenAIEmbedder",
    "PseudoLabel",
    "SentenceTransformerEmbedder",
    "SynonymTable",
    "ToolUseReward",
    "clean_answer",
    "closed_match",
    "format_score",
    "fpl_label",
    "group_answers",
    "hsr_scores",
    "majority_label",
    "make_embedder",
    "make_group_reward",
    "modality_score",
    "normalize_answer",
    "register_group_reward",
    "resolve_option",
    "score_answer",
    "score_batch",
    "score_uid_group",
    "token_f1",
    "token_recall",
    "trl_reward_fn",
]
