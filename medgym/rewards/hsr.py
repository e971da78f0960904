"""HSR (Med-Evo): a hierarchical, soft reward against a (pseudo) label.

Exact match with the reference after normalisation scores 1. Otherwise the score is
``w_f1 * token_F1 + w_embed * max(0, cosine)``, capped at ``cap`` (< 1, so a paraphrase never
ties an exact match) and set to 0 under ``floor`` (noise is not rewarded). Med-Evo does not
publish weights, cap or model: they are the knobs below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from medgym.core.answers import resolve_option, token_f1
from medgym.core.normalize import normalize_answer
from medgym.core.trajectory import Group
from medgym.errors import ConfigError
from medgym.rewards.embedders import Embedder, cosine_matrix
from medgym.rewards.fpl import fpl_label, resolve_embedder
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.pseudo import GroupAnswers, group_answers, majority_label

__all__ = ["HSRConfig", "HSRReward", "hsr_scores"]


@dataclass(frozen=True, kw_only=True)
class HSRConfig:
    """Weights of the soft part of HSR.

    Attributes:
        w_f1: Weight of token F1 against the reference.
        w_embed: Weight of the embedding cosine similarity.
        cap: Highest score a non-exact answer can get (must be < 1).
        floor: Soft scores below this become 0.
    """

    w_f1: float = 0.5
    w_embed: float = 0.5
    cap: float = 0.9
    floor: float = 0.2

    def __post_init__(self) -> None:
        if self.w_f1 < 0 or self.w_embed < 0 or self.w_f1 + self.w_embed <= 0:
            raise ConfigError(
                f"w_f1 and w_embed must be >= 0 with a positive sum; got {self.w_f1}, "
                f"{self.w_embed}"
            )
        if not 0.0 <= self.floor <= self.cap < 1.0:
            raise ConfigError(f"need 0 <= floor <= cap < 1; got floor={self.floor}, cap={self.cap}")


def hsr_scores(
    answers: GroupAnswers,
    reference: str,
    embedder: Embedder,
    config: HSRConfig = HSRConfig(),
) -> list[float]:
    """HSR score of each answer against ``reference`` (raw text; it is normalised here)."""
    ref_norm = normalize_answer(reference)
    if not ref_norm:
        return [0.0] * len(answers)
    distinct = sorted({a for a in answers.norm if a and a != ref_norm})
    sim: dict[str, float] = {}
    if distinct and config.w_embed > 0:
        vecs = embedder.embed([ref_norm, *distinct])
        cos = cosine_matrix(vecs[1:], vecs[:1])[:, 0]
        sim = {d: float(max(0.0, c)) for d, c in zip(distinct, cos, strict=True)}
    total_w = config.w_f1 + config.w_embed
    out = []
    for raw, norm in zip(answers.raw, answers.norm, strict=True):
        if not norm:
            out.append(0.0)
        elif norm == ref_norm:
            out.append(1.0)
        else:
            soft = config.w_f1 * token_f1(raw, reference) + config.w_embed * sim.get(norm, 0.0)
            soft = min(soft / total_w, config.cap)
            out.append(float(soft) if soft >= config.floor and np.isfinite(soft) else 0.0)
    return out


@register_group_reward("hsr")
class HSRReward:
    """HSR against the label, or against the group's pseudo label when there is none.

    Args:
        embedder: An :class:`Embedder`, a registry name, or ``None`` for the cached MiniLM.
        reference: ``"pseudo"`` (label-free, Med-Evo), ``"label"`` (the sample's answer; 0 for
            unlabelled samples) or ``"auto"`` (the label when present, else the pseudo label).
        pseudo: How the pseudo label is found: ``"fpl"`` or ``"majority"``.
        radius: FPL similarity radius (for the confidence).
        fpl_method: FPL rule, ``"centroid"`` or ``"density"`` (see :func:`fpl_label`).
        min_confidence: Skip the group when the pseudo label's confidence is below this.
        w_f1, w_embed, cap, floor: See :class:`HSRConfig`.
    """

    name = "hsr"

    def __init__(
        self,
        embedder: Embedder | str | None = None,
        *,
        reference: Literal["pseudo", "label", "auto"] = "pseudo",
        pseudo: Literal["fpl", "majority"] = "fpl",
        radius: float = 0.8,
        fpl_method: Literal["centroid", "density"] = "centroid",
        min_confidence: float = 0.0,
        w_f1: float = 0.5,
        w_embed: float = 0.5,
        cap: float = 0.9,
        floor: float = 0.2,
    ) -> None:
        if reference not in ("pseudo", "label", "auto"):
            raise ConfigError(f"reference must be pseudo, label or auto; got {reference!r}")
        if pseudo not in ("fpl", "majority"):
            raise ConfigError(f"pseudo must be fpl or majority; got {pseudo!r}")
        self.embedder = resolve_embedder(embedder)
        self.reference = reference
        self.pseudo = pseudo
        self.radius = radius
        self.fpl_method = fpl_method
        self.min_confidence = min_confidence
        self.config = HSRConfig(w_f1=w_f1, w_embed=w_embed, cap=cap, floor=floor)

    def reward(self, group: Group) -> GroupRewardResult:
        """Score ``group`` against its reference (see the class docstring)."""
        answers = group_answers(group)
        s = group.sample
        diagnostics: dict[str, object] = {"skipped": False}
        use_label = self.reference == "label" or (self.reference == "auto" and s.labelled)
        if use_label:
            ref = resolve_option(s.answer, s.options) if s.answer is not None else ""
            diagnostics["reference"] = "label"
        else:
            if self.pseudo == "fpl":
                sem = fpl_label(answers, self.embedder, radius=self.radius, method=self.fpl_method)
                label = sem.label
            else:
                label = majority_label(answers)
            ref = resolve_option(label.text, s.options)
            diagnostics.update(
                reference="pseudo",
                pseudo_label=label.text,
                pseudo_label_norm=label.norm,
                confidence=label.confidence,
            )
        scores = hsr_scores(answers, ref, self.embedder, self.config)
        conf = diagnostics.get("confidence")
        if isinstance(conf, float) and conf < self.min_confidence:
            diagnostics["skipped"] = True
            return GroupRewardResult([0.0] * len(scores), {"hsr": scores}, diagnostics)
        return GroupRewardResult(list(scores), {"hsr": scores}, diagnostics)
