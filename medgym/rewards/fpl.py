"""FPL (Med-Evo): the pseudo label is the semantic centre of the group's answers.

All distinct normalised answers are embedded once; the centroid is their mean weighted by how
many rollouts gave each; the pseudo label is the answer nearest the centroid (ties go to the
smallest string, so the label does not depend on rollout order). Confidence is the share of
rollouts whose answer lies within ``radius`` (cosine similarity) of the pseudo label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medgym.core.trajectory import Group
from medgym.errors import ConfigError
from medgym.rewards.embedders import Embedder, cosine_matrix, make_embedder
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.pseudo import GroupAnswers, PseudoLabel, group_answers

__all__ = ["FPLReward", "SemanticLabel", "fpl_label", "prefetch_embeddings", "resolve_embedder"]


@dataclass(frozen=True)
class SemanticLabel:
    """An FPL pseudo label and every rollout's cosine similarity to it.

    Attributes:
        label: The pseudo label (``confidence`` counts rollouts within the radius).
        similarity: Cosine similarity of each rollout's answer to the label (0 for empty ones).
    """

    label: PseudoLabel
    similarity: list[float]


def resolve_embedder(embedder: Embedder | str | None) -> Embedder:
    """An embedder object from an object, a registry name, or ``None`` (cached MiniLM)."""
    if embedder is None:
        return make_embedder("minilm")
    if isinstance(embedder, str):
        return make_embedder(embedder)
    return embedder


def fpl_label(
    answers: GroupAnswers,
    embedder: Embedder,
    *,
    radius: float = 0.8,
    method: Literal["centroid", "density"] = "centroid",
) -> SemanticLabel:
    """The semantic-centre pseudo label of ``answers`` (see the module docstring).

    Args:
        answers: The group's cleaned answers.
        embedder: Embeds the distinct normalised answers.
        radius: Cosine similarity at or above which an answer supports the label.
        method: ``"centroid"`` (Med-Evo: nearest to the count-weighted centroid) or
            ``"density"`` (medgym: the answer with the most rollouts within ``radius``, ties
            broken by the centroid score). With unit vectors the centroid score of answer i is
            ``sum_j cos(i, j)``: every far answer still pulls on it, so when wrong answers
            scatter over several findings the centroid can land on a wrong but "central" one;
            the density rule counts only near neighbours and follows the mode.
    """
    n = len(answers)
    distinct = sorted({a for a in answers.norm if a})
    if not distinct:
        return SemanticLabel(PseudoLabel("", "", 0.0, 0), [0.0] * n)
    vecs = np.asarray(embedder.embed(distinct), dtype=np.float32)
    counts = np.array([answers.norm.count(d) for d in distinct], dtype=np.float32)
    centroid = (counts[:, None] * vecs).sum(axis=0)
    norm = float(np.linalg.norm(centroid))
    scores = vecs @ (centroid / norm) if norm > 0 else counts
    scores = np.round(np.nan_to_num(scores, nan=-1.0), 6)  # rounding: order-stable ties
    if method == "density":
        near = (cosine_matrix(vecs, vecs) >= radius).astype(np.float32) @ counts
        scores = near + np.clip(scores, -1.0, 1.0) * 1e-3
    best = int(np.flatnonzero(scores == scores.max())[0])  # distinct is sorted: smallest wins
    to_best = cosine_matrix(vecs, vecs[best : best + 1])[:, 0]
    sim_of = dict(zip(distinct, (float(s) for s in to_best), strict=True))
    sim_of[distinct[best]] = 1.0
    similarity = [sim_of.get(a, 0.0) if a else 0.0 for a in answers.norm]
    support = sum(s >= radius for s in similarity)
    text = min(r for r, m in zip(answers.raw, answers.norm, strict=True) if m == distinct[best])
    label = PseudoLabel(text, distinct[best], support / n, int(support))
    return SemanticLabel(label, similarity)


def prefetch_embeddings(groups: Iterable[Group], embedder: Embedder) -> int:
    """Embed every distinct normalised answer of ``groups`` in one call; returns how many.

    With a :class:`~medgym.rewards.embedders.CachedEmbedder` this warms the cache, so scoring the
    groups afterwards runs no model: one large batch is much faster than many small ones.
    """
    distinct = sorted({a for g in groups for a in group_answers(g).norm if a})
    if distinct:
        embedder.embed(distinct)
    return len(distinct)


@register_group_reward("fpl")
class FPLReward:
    """1.0 for rollouts whose answer lies within ``radius`` of the FPL pseudo label, else 0.0.

    Args:
        embedder: An :class:`Embedder`, a registry name, or ``None`` for the cached MiniLM.
        radius: Cosine similarity at or above which an answer agrees with the label.
        min_confidence: Skip the group (all zeros) when confidence is below this.
        method: ``"centroid"`` (Med-Evo) or ``"density"``; see :func:`fpl_label`.
    """

    name = "fpl"

    def __init__(
        self,
        embedder: Embedder | str | None = None,
        *,
        radius: float = 0.8,
        min_confidence: float = 0.0,
        method: Literal["centroid", "density"] = "centroid",
    ) -> None:
        if method not in ("centroid", "density"):
            raise ConfigError(f"method must be centroid or density; got {method!r}")
        if not -1.0 <= radius <= 1.0:
            raise ConfigError(f"radius is a cosine similarity in [-1, 1]; got {radius}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ConfigError(f"min_confidence must be in [0, 1]; got {min_confidence}")
        self.embedder = resolve_embedder(embedder)
        self.radius = radius
        self.min_confidence = min_confidence
        self.method = method

    def reward(self, group: Group) -> GroupRewardResult:
        """Score ``group`` by semantic agreement with its FPL pseudo label."""
        answers = group_answers(group)
        sem = fpl_label(answers, self.embedder, radius=self.radius, method=self.method)
        agree = [float(s >= self.radius) for s in sem.similarity]
        skipped = sem.label.confidence < self.min_confidence
        return GroupRewardResult(
            [0.0] * len(agree) if skipped else agree,
            {"agree": agree, "similarity": list(sem.similarity)},
            {
                "pseudo_label": sem.label.text,
                "pseudo_label_norm": sem.label.norm,
                "confidence": sem.label.confidence,
                "support": sem.label.support,
                "skipped": skipped,
            },
        )
