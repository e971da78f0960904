"""Composite reward presets: MedVR, DeepEyes, MediX-R1, and medgym's fully label-free mode.

======================  ==============================================================
``medvr``               ``R = acc + format + 1[acc > 0] * CCA``
``deepeyes``            ``R = 0.8 acc + 0.2 format + 1.2 * 1[image tool used and acc > 0.5]``
``medix_r1``            ``0.9 (0.575 judge + 0.375 embed + 0.05 modality) + 0.1 format``
``label_free``          ``R = HSR + format + 1[HSR > 0.5] * CCA`` against the FPL pseudo label
======================  ==============================================================

``acc`` is supervised accuracy when the sample has a label; without one (``accuracy="auto"``)
it is HSR against the FPL pseudo label, so every preset also runs label-free.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from medgym.core.normalize import normalize_answer
from medgym.core.trajectory import Group
from medgym.errors import ConfigError
from medgym.rewards.cca import CCAReward
from medgym.rewards.embedders import Embedder, cosine_matrix
from medgym.rewards.fpl import fpl_label, resolve_embedder
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.hsr import HSRReward
from medgym.rewards.judge import LLMJudge
from medgym.rewards.majority import MajorityVoteReward
from medgym.rewards.persample import (
    AccuracyReward,
    final_text,
    trajectory_format,
    used_image_tool,
)
from medgym.rewards.pseudo import group_answers
from medgym.rewards.scoring import closed_match, modality_score, resolve_option

__all__ = ["AnswerToolReward", "MediXR1Reward", "deepeyes", "label_free", "medvr"]

Accuracy = Literal["auto", "label", "hsr", "majority"]


class AnswerToolReward:
    """``R = w_acc * acc + w_format * format + w_tool * 1[acc > gate] * tool``.

    Args:
        accuracy: ``"label"`` (supervised), ``"hsr"`` (HSR vs the FPL pseudo label),
            ``"majority"`` (agreement with the majority answer) or ``"auto"`` (label when the
            sample has one, else HSR).
        tool: ``"cca"`` (consensus-aligned, T+ = rollouts with ``acc > gate``) or ``"any"``
            (1 when any executed call returned an image, DeepEyes).
        w_acc, w_format, w_tool: Weights.
        gate: Tool reward is paid only to rollouts with ``acc > gate``.
        embedder: Embedder for HSR/FPL (``None``: the cached MiniLM, loaded when first needed).
        min_confidence: Label-free only: skip groups whose pseudo label is less confident.
        cca_options: Keyword options of :class:`CCAReward` (not ``positives``).
        hsr_options: Keyword options of :class:`HSRReward` (not ``embedder``/``reference``).
    """

    def __init__(
        self,
        *,
        name: str = "answer_tool",
        accuracy: Accuracy = "auto",
        tool: Literal["cca", "any"] = "cca",
        w_acc: float = 1.0,
        w_format: float = 1.0,
        w_tool: float = 1.0,
        gate: float = 0.0,
        embedder: Embedder | str | None = None,
        min_confidence: float = 0.0,
        cca_options: dict[str, Any] | None = None,
        hsr_options: dict[str, Any] | None = None,
    ) -> None:
        if accuracy not in ("auto", "label", "hsr", "majority"):
            raise ConfigError(f"accuracy must be auto, label, hsr or majority; got {accuracy!r}")
        if tool not in ("cca", "any"):
            raise ConfigError(f"tool must be cca or any; got {tool!r}")
        if not all(np.isfinite([w_acc, w_format, w_tool, gate])):
            raise ConfigError("weights and gate must be finite")
        self.name = name
        self.accuracy, self.tool = accuracy, tool
        self.w_acc, self.w_format, self.w_tool, self.gate = w_acc, w_format, w_tool, gate
        self.min_confidence = min_confidence
        self._embedder_spec = embedder
        self._label = AccuracyReward()
        self._majority = MajorityVoteReward()
        self._hsr: HSRReward | None = None
        opts = dict(cca_options or {})
        opts.pop("positives", None)
        self._cca = CCAReward(**opts)
        self._hsr_options = {
            k: v for k, v in (hsr_options or {}).items() if k not in ("embedder", "reference")
        }

    def _accuracy(self, group: Group) -> GroupRewardResult:
        mode = self.accuracy
        if mode == "auto":
            mode = "label" if group.sample.labelled else "hsr"
        if mode == "label":
            return self._label.reward(group)
        if mode == "majority":
            return self._majority.reward(group)
        if self._hsr is None:
            self._hsr = HSRReward(
                resolve_embedder(self._embedder_spec), reference="pseudo", **self._hsr_options
            )
        return self._hsr.reward(group)

    def reward(self, group: Group) -> GroupRewardResult:
        """Score ``group`` (see the class docstring)."""
        acc_res = self._accuracy(group)
        acc = acc_res.rewards
        fmt = [trajectory_format(t) for t in group.trajectories]
        positives = [a > self.gate for a in acc]
        diag: dict[str, Any] = {"accuracy": acc_res.diagnostics, "skipped": False}
        if self.tool == "cca":
            tool_res = self._cca.reward_with_positives(group, positives)
            tool = tool_res.rewards
            diag["cca"] = tool_res.diagnostics
        else:
            pairs = zip(positives, group.trajectories, strict=True)
            tool = [float(p and used_image_tool(t)) for p, t in pairs]
        conf = acc_res.diagnostics.get("confidence")
        if conf is not None:
            diag["confidence"] = conf
        total = [
            self.w_acc * a + self.w_format * f + self.w_tool * float(p) * t
            for a, f, p, t in zip(acc, fmt, positives, tool, strict=True)
        ]
        if isinstance(conf, float) and conf < self.min_confidence:
            diag["skipped"] = True
            total = [0.0] * len(total)
        parts = {"accuracy": list(acc), "format": fmt, "tool": list(tool)}
        return GroupRewardResult(total, parts, diag)


@register_group_reward("medvr")
def medvr(**options: Any) -> AnswerToolReward:
    """MedVR: ``R = acc + format + 1[acc > 0] * CCA`` (CCA: 1.0 / 0.5 by IoU with consensus)."""
    return AnswerToolReward(**{"name": "medvr", "tool": "cca", "gate": 0.0, **options})


@register_group_reward("deepeyes")
def deepeyes(**options: Any) -> AnswerToolReward:
    """DeepEyes: ``0.8 acc + 0.2 format + 1.2 * 1[image tool used and acc > 0.5]``."""
    defaults = {"name": "deepeyes", "tool": "any", "gate": 0.5, "w_acc": 0.8, "w_format": 0.2,
                "w_tool": 1.2}  # fmt: skip
    return AnswerToolReward(**{**defaults, **options})


@register_group_reward("label_free")
def label_free(**options: Any) -> AnswerToolReward:
    """Fully label-free: HSR vs the FPL pseudo label for the answer, CCA on ``HSR > 0.5``."""
    return AnswerToolReward(**{"name": "label_free", "accuracy": "hsr", "gate": 0.5, **options})


@register_group_reward("medix_r1")
class MediXR1Reward:
    """MediX-R1's composite: ``0.9 (0.575 judge + 0.375 embed + 0.05 modality) + 0.1 format``.

    Every part is 0/1. ``judge``: exact match, else the LLM judge's YES (exact match only when
    no judge is given). ``embed``: cosine similarity to the reference >= ``embed_threshold``.
    Empty and one-character answers score 0 in both. The reference is the label, or the FPL
    pseudo label when the sample has none.

    Args:
        judge: An :class:`LLMJudge`, or ``None`` for exact match only.
        embedder: Embedder for the ``embed`` part (``None``: the cached MiniLM).
        embed_threshold: Cosine similarity that counts as a match.
        weights: ``(judge, embed, modality, format)`` weights; the first three are scaled by
            ``0.9`` and format by ``0.1`` as in the paper unless ``weights`` is given raw.
    """

    name = "medix_r1"

    def __init__(
        self,
        judge: LLMJudge | None = None,
        embedder: Embedder | str | None = None,
        *,
        embed_threshold: float = 0.8,
        weights: tuple[float, float, float, float] = (0.9 * 0.575, 0.9 * 0.375, 0.9 * 0.05, 0.1),
    ) -> None:
        if len(weights) != 4 or not all(np.isfinite(weights)):
            raise ConfigError(f"weights must be 4 finite numbers; got {weights!r}")
        self.judge = judge
        self.embedder = resolve_embedder(embedder)
        self.embed_threshold = embed_threshold
        self.weights = tuple(float(w) for w in weights)

    def reward(self, group: Group) -> GroupRewardResult:
        """Score ``group`` with MediX-R1's four parts."""
        s = group.sample
        answers = group_answers(group)
        diag: dict[str, Any] = {"skipped": False, "reference": "label"}
        ref = s.answer
        if ref is None:
            label = fpl_label(answers, self.embedder).label
            ref = label.text
            diag.update(reference="pseudo", pseudo_label=ref, confidence=label.confidence)
        ref = resolve_option(ref, s.options) if ref else ""
        short = [len(resolve_option(a, s.options).strip()) < 2 for a in answers.raw]
        if not ref:
            judged = [0.0] * len(group)
        elif self.judge is not None:
            judged = self.judge.score_many(s.question, answers.raw, ref, s.options)
        else:
            judged = [closed_match(a, ref, s.options) for a in answers.raw]
        judged = [0.0 if sh else j for j, sh in zip(judged, short, strict=True)]
        embed = [0.0] * len(group)
        if ref:
            vecs = self.embedder.embed([normalize_answer(ref), *answers.norm])
            sims = cosine_matrix(vecs[1:], vecs[:1])[:, 0]
            embed = [
                float(sim >= self.embed_threshold and not sh and bool(n))
                for sim, sh, n in zip(sims, short, answers.norm, strict=True)
            ]
        modality = [modality_score(final_text(t), s.modality) for t in group.trajectories]
        fmt = [trajectory_format(t, require_modality=True) for t in group.trajectories]
        wj, we, wm, wf = self.weights
        total = [
            wj * j + we * e + wm * m + wf * f
            for j, e, m, f in zip(judged, embed, modality, fmt, strict=True)
        ]
        parts = {"judge": judged, "embed": embed, "modality": modality, "format": fmt}
        return GroupRewardResult(total, parts, diag)
