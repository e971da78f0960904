"""The learning benchmark: does label-free GRPO make the tiny agent better, and why?

Three disjoint splits of the tiny task (``synthetic`` by default,
:data:`~medgym.agents.tiny_vlm.TINY_TASK`; ``synthetic3d`` for volumes,
:data:`~medgym.agents.tiny_vlm.TINY3D_TASK`):

- **A** (``train``): the warm start, with labels (it plays the role of pre-training);
- **B** (``validate``): reinforcement learning. Labels are removed before the trainer sees the
  samples (:func:`strip_labels`); only the ``supervised`` reference variant gets them back;
- **C** (``test``): held-out evaluation, with a fixed probe prefix for the training curves.

Every variant starts from the same warm-started checkpoint and trains for the same budget
(:class:`~medgym.learning.grpo.GRPOConfig`), then the warm start and each variant are evaluated on
C by the evaluation harness (main condition, ``no-tools`` and ``blank-image`` ablations, 95%
cluster-bootstrap intervals). ``OUT/learning.json`` holds the figures, ``OUT/learning.html`` the
curves, ``OUT/models/<variant>/`` the checkpoints (``medgym eval --policy hf:PATH`` reads them
with their profile) and ``OUT/eval/<variant>/`` the evaluation runs with their reports.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medgym.core.sample import Sample
from medgym.errors import ConfigError, did_you_mean
from medgym.learning.evaluate import evaluate_checkpoint, probe_accuracy, pseudo_label_accuracy
from medgym.learning.grpo import GRPOConfig

__all__ = [
    "HIDDEN_META_KEYS",
    "METRICS",
    "TINY_GRPO",
    "VARIANTS",
    "LearningConfig",
    "Variant",
    "evaluate_checkpoint",
    "run_learning",
    "split_samples",
    "strip_labels",
    "tiny_grpo_config",
    "variant_session",
]

logger = logging.getLogger(__name__)

HIDDEN_META_KEYS = ("findings", "answer", "evidence", "nodule_slices", "diameter_mm")
"""``Sample.meta`` keys that describe the answer (``synthetic``'s findings, ``synthetic3d``'s
nodule); :func:`strip_labels` drops them."""

METRICS = (
    "accuracy",
    "answer_rate",
    "blank_image_accuracy",
    "no_tools_accuracy",
    "tool_calls_per_episode",
    "zoom_iou",
)
"""The per-variant figures of ``learning.json``, each ``{"value", "low", "high"}``."""


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One way to train from the warm start.

    Attributes:
        reward: Group reward registry name.
        options: Options of the reward.
        tools: Train in the env with tools (``False``: answer at once, no tools).
        labels: The RL split keeps its labels (the supervised reference only).
        penalties: The session's penalties (malformed calls, over-budget turns) enter the
            reward (``False``: no signal but the reward's, for the ``entropy-only`` control).
        description: One line for tables and the report.
    """

    reward: str
    options: dict[str, Any] = field(default_factory=dict)
    tools: bool = True
    labels: bool = False
    penalties: bool = True
    description: str = ""


VARIANTS: dict[str, Variant] = {
    "label-free": Variant(
        reward="label_free",
        description="FPL pseudo label + HSR answer reward + CCA tool reward; no labels",
    ),
    "label-free-no-cca": Variant(
        reward="label_free",
        options={"w_tool": 0.0},
        description="the same without the CCA tool reward",
    ),
    "supervised": Variant(
        reward="medvr",
        options={"accuracy": "label"},
        labels=True,
        description="gold-answer accuracy + CCA over the correct rollouts (upper reference)",
    ),
    "no-tools": Variant(
        reward="label_free",
        tools=False,
        description="label-free reward in the env without tools",
    ),
    "entropy-only": Variant(
        reward="label_free",
        options={"w_acc": 0.0, "w_format": 0.0, "w_tool": 0.0},
        penalties=False,
        description="every reward and penalty 0: the entropy term alone trains (the control "
        "that says what the reward adds; with entropy_coeff 0 nothing trains)",
    ),
}
"""The variants of the benchmark, by name."""


#: GRPO settings of the tiny agent (:func:`tiny_grpo_config`; ``medgym learning``'s defaults).
#: 80 steps of 8 samples x 4 rollouts at lr 1e-4 with the replies' entropy minimised
#: (``entropy_coeff=-1``) and the vision tower frozen. The warm start's misses at temperature 1
#: are tool calls sampled with one wrong token (each of the call's tokens at p ~ 0.995), which
#: the policy gradient alone sharpens slowly; the entropy term sharpens every token, and holds
#: off the collapse to answering without a look that lr 1e-4 brings without it. With the
#: tower trained even lr 3e-5 erodes the warm start's perception (``docs/learning.md``).
TINY_GRPO: dict[str, Any] = {
    "steps": 80,
    "prompts_per_step": 8,
    "num_generations": 4,
    "lr": 1e-4,
    "entropy_coeff": -1.0,
    "freeze_vision": True,
}


def tiny_grpo_config(**overrides: Any) -> GRPOConfig:
    """GRPO settings of the tiny agent (the benchmark's and the demo's) with ``overrides``.

    The settings are :data:`TINY_GRPO`; ``overrides`` are :class:`GRPOConfig` fields.
    """
    return GRPOConfig(**{**TINY_GRPO, **overrides})


@dataclass(frozen=True, kw_only=True)
class LearningConfig:
    """Settings of :func:`run_learning`.

    Attributes:
        variants: Variant names (the warm start is always evaluated).
        task: The tiny task (``synthetic`` or ``synthetic3d``): data, session budgets and the
            warm start's demonstrations.
        warm: Warm-start settings (split A; its ``num_samples`` is A's size); default
            ``WarmStartConfig(task=task)``, and its task must be ``task``.
        rl_samples: Size of split B.
        eval_samples: Size of split C.
        probe_samples: Prefix of C evaluated during training for the curves.
        probe_every: Steps between probe evaluations.
        grpo: GRPO settings shared by every variant.
        eval_n: Rollouts per sample in the evaluation.
        eval_temperature: Sampling temperature of the evaluation (the rollouts' 1.0 by
            default; at 0.7 the tiny agent's sampling noise in its tool calls mostly goes,
            ``docs/learning.md``).
        resamples: Bootstrap resamples of every interval.
        embedder: Embedder of FPL/HSR (``hashing``: offline and fast).
        seed: Seed of the splits, the bootstrap and the evaluation sampling.
    """

    variants: tuple[str, ...] = tuple(VARIANTS)
    task: str = "synthetic"
    warm: Any = None
    rl_samples: int = 128
    eval_samples: int = 128
    probe_samples: int = 32
    probe_every: int = 5
    grpo: GRPOConfig = field(default_factory=tiny_grpo_config)
    eval_n: int = 2
    eval_temperature: float = 1.0
    resamples: int = 1000
    embedder: str = "hashing"
    seed: int = 0

    def __post_init__(self) -> None:
        from medgym.agents.tiny_vlm.builder import get_tiny_task

        get_tiny_task(self.task)
        if self.warm is not None and self.warm.task != self.task:
            raise ConfigError(
                f"the warm start is on task `{self.warm.task}` and the benchmark on "
                f"`{self.task}`: give WarmStartConfig(task={self.task!r})"
            )
        for v in self.variants:
            if v not in VARIANTS:
                raise ConfigError(
                    f"unknown variant `{v}`{did_you_mean(v, VARIANTS)}; known: "
                    f"{', '.join(VARIANTS)}"
                )
        for name in ("rl_samples", "eval_samples", "probe_samples", "probe_every", "eval_n"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not (math.isfinite(self.eval_temperature) and self.eval_temperature > 0):
            raise ConfigError(f"eval_temperature must be > 0; got {self.eval_temperature}")
        if self.probe_samples > self.eval_samples:
            raise ConfigError(
                f"probe_samples ({self.probe_samples}) must be <= eval_samples "
                f"({self.eval_samples}): the probe is a prefix of split C"
            )


def strip_labels(samples: Sequence[Sample]) -> list[Sample]:
    """Copies without anything that gives the answer away: what a label-free trainer sees.

    ``answer`` becomes ``None``, ``evidence`` empty, and ``meta`` loses the finding list
    (:data:`HIDDEN_META_KEYS`); the question, options, images and the answer-free ``query``
    stay. (The ``synthetic://`` image URI spells out how to draw the findings, as a DICOM file
    holds its pixels: the trainer passes it to the renderer and never parses it.)
    """
    return [
        s.model_copy(
            update={
                "answer": None,
                "evidence": (),
                "meta": {k: v for k, v in s.meta.items() if k not in HIDDEN_META_KEYS},
            }
        )
        for s in samples
    ]


def split_samples(config: LearningConfig) -> dict[str, list[Sample]]:
    """Splits B (``rl``, labels stripped), B with labels (``rl_labelled``), C (``eval``), probe.

    Split A is drawn by the warm start itself (the ``train`` split); B is ``validate`` and C is
    ``test``, whose image seeds are disjoint by construction (``docs/bundled_data.md``).
    """
    from medgym.agents.tiny_vlm import get_tiny_task

    task = get_tiny_task(config.task)
    rl = task.samples("validate", config.rl_samples, config.seed)
    ev = task.samples("test", config.eval_samples, config.seed)
    return {
        "rl": strip_labels(rl),
        "rl_labelled": rl,
        "eval": ev,
        "probe": ev[: config.probe_samples],
    }


def _save_checkpoint(model: Any, processor: Any, profile: Any, task: str, out: Path) -> Path:
    from medgym.agents.tiny_vlm.builder import save_checkpoint_records

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    save_checkpoint_records(out, profile, task)
    return out


def variant_session(variant: Variant, task: str, penalty_weight: float = 1.0) -> Any:
    """The ``SessionConfig`` a variant trains in.

    The tiny task's budgets, without tools for ``no-tools``, the penalties scaled by
    ``penalty_weight`` (0 where the variant has none).
    """
    from medgym.agents.tiny_vlm import get_tiny_task
    from medgym.envs.config import SessionConfig

    options = dict(get_tiny_task(task).session)
    if not variant.tools:
        options["tools"] = []
    weight = penalty_weight if variant.penalties else 0.0
    return SessionConfig.from_dict(options).with_penalty_weight(weight)


def train_variant(
    name: str,
    warm_dir: Path,
    splits: dict[str, list[Sample]],
    config: LearningConfig,
    out: Path,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one variant from the warm start; save it; return its curve and timings."""
    from medgym.agents.hf_policy import HFPolicy
    from medgym.agents.tiny_vlm import get_tiny_task
    from medgym.envs.config import SessionConfig
    from medgym.integrations.trl.rewards import SessionGroupReward
    from medgym.learning.grpo import LockstepGRPO

    variant = VARIANTS[name]
    policy = HFPolicy.from_pretrained(str(warm_dir), name=name, seed=config.seed)
    profile = policy.profile
    if profile is None:
        raise ConfigError(f"{warm_dir} records no model profile (medgym_profile.json)")
    task_session = get_tiny_task(config.task).session
    session = variant_session(variant, config.task, config.grpo.penalty_weight)
    reward = SessionGroupReward(
        num_generations=config.grpo.num_generations,
        reward=variant.reward,
        reward_options={"embedder": config.embedder, **variant.options},
    )
    train = splits["rl_labelled"] if variant.labels else splits["rl"]
    hidden = {s.id: s for s in splits["rl_labelled"]}
    probe_session = SessionConfig.from_dict(task_session)
    curve: list[dict[str, Any]] = []

    def on_step(step: int, record: dict[str, Any], trainer: LockstepGRPO) -> None:
        row = {
            "step": step,
            "reward": record["reward"],
            "tool_call_rate": record["tool_call_rate"],
            "answer_rate": record["answer_rate"],
            "pseudo_label_accuracy": pseudo_label_accuracy(record, hidden),
            "pseudo_label_confidence": record.get("pseudo_label_confidence"),
            "kl": record.get("kl", 0.0),
            "step_seconds": record["step_seconds"],
        }
        if step % config.probe_every == 0 or step == config.grpo.steps:
            row["probe_accuracy"] = probe_accuracy(
                trainer.policy, splits["probe"], probe_session, profile
            )
        curve.append(row)

    start = time.perf_counter()
    probe0 = probe_accuracy(policy, splits["probe"], probe_session, profile)
    trainer = LockstepGRPO(
        policy, train, session_config=session, profile=profile, reward=reward,
        config=config.grpo, callback=on_step,
    )  # fmt: skip
    trainer.train(progress=progress, label=f"GRPO {name}")
    seconds = time.perf_counter() - start
    ckpt = _save_checkpoint(
        policy.model, policy.processor, profile, config.task, out / "models" / name
    )
    return {
        "checkpoint": str(ckpt),
        "steps": config.grpo.steps,
        "seconds": seconds,
        "curve": [{"step": 0, "probe_accuracy": probe0}, *curve],
    }


def run_learning(
    config: LearningConfig,
    out_dir: str | Path,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Warm start (cached), train every variant, evaluate all on split C, write the results.

    Args:
        config: What to run.
        out_dir: Output folder.
        progress: Show one progress bar per phase.
        log: Where one line per finished phase goes (default: the logger).
        cache: Warm-start cache folder (default ``$MEDGYM_CACHE_DIR``).

    Returns:
        The content of ``learning.json``: per variant (``warm_start`` first) the
        :data:`METRICS`, ``steps``, ``seconds``, ``checkpoint`` and ``curve``. The goals and
        the config go to ``learning_meta.json``.
    """
    from medgym.agents.tiny_vlm import WarmStartConfig, warm_start

    say = log or (lambda msg: logger.info("%s", msg))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    warm_cfg = config.warm or WarmStartConfig(task=config.task)
    t0 = time.perf_counter()
    warm_dir = warm_start(warm_cfg, progress=progress, cache=cache)
    warm_record = json.loads((warm_dir / "warm_start.json").read_text())
    say(f"warm start: {warm_dir} ({warm_record['steps']} steps)")
    splits = split_samples(config)
    results: dict[str, Any] = {}
    ev = evaluate_checkpoint(
        warm_dir, splits["eval"], out / "eval" / "warm_start", n=config.eval_n,
        resamples=config.resamples, seed=config.seed, progress=progress, label="warm_start",
        task=config.task, temperature=config.eval_temperature,
    )  # fmt: skip
    results["warm_start"] = {
        **ev, "steps": warm_record["steps"], "seconds": warm_record["seconds"],
        "cached_seconds": time.perf_counter() - t0, "checkpoint": str(warm_dir), "curve": [],
    }  # fmt: skip
    say(_line("warm_start", results["warm_start"]))
    for name in config.variants:
        trained = train_variant(name, warm_dir, splits, config, out, progress=progress)
        ev = evaluate_checkpoint(
            trained["checkpoint"], splits["eval"], out / "eval" / name, n=config.eval_n,
            resamples=config.resamples, seed=config.seed, progress=progress, label=name,
            task=config.task, temperature=config.eval_temperature,
        )  # fmt: skip
        results[name] = {**ev, **trained}
        say(_line(name, results[name]))
        _write(out, config, results)  # after every variant: a long run keeps what it did
    return _write(out, config, results)


def _line(name: str, r: dict[str, Any]) -> str:
    acc = r.get("accuracy") or {}
    return (
        f"{name}: accuracy {acc.get('value', float('nan')):.3f} "
        f"[{acc.get('low', float('nan')):.3f}, {acc.get('high', float('nan')):.3f}] "
        f"in {r.get('seconds', 0.0):.0f} s"
    )


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, checked on the figures (``None`` where a variant is missing)."""

    def val(v: str, m: str) -> float | None:
        e = results.get(v, {}).get(m)
        return None if e is None else float(e["value"])

    warm, lf = val("warm_start", "accuracy"), val("label-free", "accuracy")
    sup, nocca = val("supervised", "accuracy"), val("label-free-no-cca", "zoom_iou")
    out: dict[str, Any] = {}
    if warm is not None and lf is not None:
        low = results["label-free"]["accuracy"]["low"]
        out["label_free_gain"] = lf - warm
        out["gain_at_least_10_points_and_low_above_warm"] = lf - warm >= 0.10 and low > warm
        if sup is not None:
            out["supervised_gain"] = sup - warm
            out["share_of_supervised_gain"] = (lf - warm) / (sup - warm) if sup > warm else None
        nt, bl = val("label-free", "no_tools_accuracy"), val("label-free", "blank_image_accuracy")
        if nt is not None and bl is not None:
            out["tools_beat_ablations"] = lf > nt and lf > bl
    iou = val("label-free", "zoom_iou")
    if iou is not None and nocca is not None:
        out["cca_raises_zoom_iou"] = iou > nocca
    if "label-free" in results:
        out["label_free_seconds"] = results["label-free"]["seconds"]
    return out


def _write(out: Path, config: LearningConfig, results: dict[str, Any]) -> dict[str, Any]:
    """``learning.json`` (variants only), ``learning_meta.json`` (goals, config), the page."""
    from medgym.learning.report import write_learning_report

    meta = {"goals": goals(results), "config": _jsonable(asdict(config))}
    (out / "learning.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "learning_meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    write_learning_report(results, meta, out / "learning.html")
    return results


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
