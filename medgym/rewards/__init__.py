"""Rewards: per-sample scores and (later) label-free group rewards."""

from __future__ import annotations

from medgym.rewards.scoring import (
    closed_match,
    normalize_answer,
    resolve_option,
    score_answer,
    token_recall,
)

__all__ = ["closed_match", "normalize_answer", "resolve_option", "score_answer", "token_recall"]
