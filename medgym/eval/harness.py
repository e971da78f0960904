"""The evaluation harness: run a policy over a dataset in an env (and its ablations), score it.

Layout of an output folder::

    DIR/results.json                   config, versions, metrics per condition, image reliance
    DIR/trajectories/<condition>.jsonl groups (one per sample), appended chunk by chunk
    DIR/episodes/<condition>.jsonl     per-episode metric records
    DIR/report.html                    the static report (see :mod:`medgym.eval.report`)

Runs are resumable: samples whose group is already in ``trajectories/<condition>.jsonl`` are
skipped, so an interrupted run picks up at the next chunk.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from medgym.agents.policy import Policy
from medgym.core.sample import Sample
from medgym.core.trajectory import Group, read_groups
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import DEFAULT_PROFILE, ModelProfile, get_profile
from medgym.errors import ConfigError, did_you_mean
from medgym.eval.ablations import LABEL_READING_POLICIES, ablate_samples, parse_ablations
from medgym.eval.metrics import (
    JudgeFn,
    episode_record,
    group_metrics,
    headline_metrics,
    sample_record,
)

__all__ = [
    "EvalConfig",
    "EvalResult",
    "evaluate_groups",
    "load_samples",
    "resolve_profile",
    "run_eval",
]

logger = logging.getLogger(__name__)

RELIANCE_ABLATIONS = ("blank-image", "shuffled-image")


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """What to evaluate and how.

    Attributes:
        policy: Policy spec (``scripted:NAME``, ``hf:PATH``, ``openai:URL:MODEL``).
        data: Dataset name with an optional split, ``NAME[:split]`` (default split ``test``).
        data_kwargs: Extra loader arguments (e.g. ``{"num_samples": 32}`` for ``synthetic``).
        env: Env id whose tools and budgets the episodes use (see ``medgym.envs.ENV_IDS``).
        session_options: ``SessionConfig`` fields set on top of the env's (e.g.
            ``{"max_turns": 2}``); the ``no-tools`` condition keeps its own ``tools``.
        n: Rollouts per sample (pass@k and majority metrics need n > 1).
        ablations: Any of ``no-tools``, ``blank-image``, ``shuffled-image``.
        evr: EVR mode (``off``, ``branch``, ``reground``); branch mode uses ``n`` leaves.
        evr_options: Other :class:`medgym.agents.EVRConfig` fields (threshold, gamma...).
        judge: ``URL[|MODEL]`` of an OpenAI-compatible YES/NO judge (optional).
        limit: Most samples evaluated.
        seed: Seed of the shuffled-image permutation and the bootstrap.
        concurrency: Episodes in flight at once (matters for remote policies).
        chunk_size: Samples per chunk; results are appended after every chunk.
        resamples: Bootstrap resamples of every interval.
        pseudo: Label-free pseudo label scored: ``majority`` vote or ``fpl`` (semantic centre).
        profile: Model profile of the sessions (box convention, views, chat format). ``None``:
            the profile the policy's checkpoint recorded, else ``qwen2.5-vl``. A name that
            disagrees with the checkpoint's is used, with a warning.
        progress: Show a progress bar.
    """

    policy: str
    data: str
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    env: str = "MedVQA-Zoom-v0"
    session_options: dict[str, Any] = field(default_factory=dict)
    n: int = 1
    ablations: tuple[str, ...] = ()
    evr: str = "off"
    evr_options: dict[str, Any] = field(default_factory=dict)
    judge: str | None = None
    limit: int | None = None
    seed: int = 0
    concurrency: int = 8
    chunk_size: int = 16
    resamples: int = 1000
    pseudo: Literal["majority", "fpl"] = "majority"
    profile: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        from medgym.envs import ENV_IDS

        if self.env not in ENV_IDS:
            raise ConfigError(
                f"unknown env `{self.env}`{did_you_mean(self.env, ENV_IDS)}; "
                f"known: {', '.join(ENV_IDS)}"
            )
        for name in ("n", "concurrency", "chunk_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.resamples < 0:
            raise ConfigError(f"resamples must be >= 0; got {self.resamples}")
        if self.evr not in ("off", "branch", "reground"):
            raise ConfigError(f"evr must be off, branch or reground; got {self.evr!r}")
        if self.pseudo not in ("majority", "fpl"):
            raise ConfigError(f"pseudo must be 'majority' or 'fpl'; got {self.pseudo!r}")
        object.__setattr__(self, "ablations", parse_ablations(self.ablations))
        if self.profile is not None:
            get_profile(self.profile)  # an unknown name fails here, naming the near one
        self.session_config()  # an unknown or bad session option fails here, named

    def session_config(self, condition: str = "main") -> SessionConfig:
        """The session settings of a condition (``no-tools`` uses ``MedVQA-Direct-v0``)."""
        from medgym.envs import env_session_config

        if condition == "no-tools":
            return env_session_config("MedVQA-Direct-v0", **{**self.session_options, "tools": []})
        return env_session_config(self.env, **self.session_options)


@dataclass
class EvalResult:
    """What :func:`run_eval` returns.

    Attributes:
        out_dir: The output folder.
        results: The content of ``results.json``.
        groups: Groups per condition (including those found on disk).
    """

    out_dir: Path
    results: dict[str, Any]
    groups: dict[str, list[Group]]


def load_samples(data: str, *, limit: int | None = None, **kwargs: Any) -> list[Sample]:
    """Load ``NAME[:split]`` through :func:`medgym.data.load`."""
    from medgym.data import load

    name, _, split = data.partition(":")
    return load(name, split=split or "test", limit=limit, **kwargs)


def _versions() -> dict[str, str]:
    import numpy

    import medgym

    return {
        "medgym": medgym.__version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def resolve_profile(config: EvalConfig, policy: Policy) -> ModelProfile:
    """The profile episodes run with: the config's, else the checkpoint's, else the default.

    A checkpoint that recorded a profile (``HFPolicy.profile``) and a config that names another
    one disagree: the named one is used (an explicit override) and a warning says so, since a
    model shown views or boxes it was not trained on answers at random.
    """
    own = getattr(policy, "profile", None)
    if config.profile is None:
        return own if isinstance(own, ModelProfile) else get_profile(DEFAULT_PROFILE)
    chosen = get_profile(config.profile)
    if isinstance(own, ModelProfile) and own != chosen:
        logger.warning(
            "policy `%s` was trained with profile `%s` (max_pixels=%d, boxes %s) but is evaluated "
            "with `%s` (max_pixels=%d, boxes %s) as asked; drop the profile option to use the "
            "checkpoint's",
            policy.name,
            own.name,
            own.max_pixels,
            own.box_format,
            chosen.name,
            chosen.max_pixels,
            chosen.box_format,
        )
    return chosen


def _runner(config: EvalConfig, condition: str, profile: ModelProfile) -> Any:
    from medgym.agents import EVRConfig, GroupRunner

    evr = None
    if config.evr != "off" and condition != "no-tools":
        options: dict[str, Any] = {
            "leaf_budget": config.n, "initial_rollouts": min(config.n, 4), **config.evr_options,
        }  # fmt: skip
        evr = EVRConfig(mode=config.evr, **options)  # type: ignore[arg-type]
    return GroupRunner(
        config.session_config(condition),
        profile=profile,
        n=config.n,
        concurrency=config.concurrency,
        progress=config.progress,
        evr=evr,
    )


def _token_text(policy: Policy, groups: list[Group]) -> None:
    """Store decoded token pieces in ``meta["turn_tokens"]`` when the policy has a tokenizer."""
    processor = getattr(policy, "processor", None)
    tokenizer = getattr(processor, "tokenizer", None) or getattr(policy, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "decode"):
        return
    for g in groups:
        for t in g.trajectories:
            t.meta["turn_tokens"] = [
                [tokenizer.decode([i]) for i in turn.token_ids] if turn.token_ids else None
                for turn in t.turns
            ]


def _append(groups: Sequence[Group], path: Path) -> None:
    with path.open("a", encoding="utf-8") as f:
        for g in groups:
            f.write(g.model_dump_json() + "\n")


def _run_condition(
    config: EvalConfig,
    condition: str,
    samples: list[Sample],
    policy: Policy,
    out_dir: Path,
    profile: ModelProfile,
) -> tuple[list[Group], dict[str, float]]:
    """Run what is missing of one condition; returns its groups and this call's EVR counters."""
    path = out_dir / "trajectories" / f"{condition}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, Group] = {}
    if path.exists():
        done = {g.id: g for g in read_groups(path)}
    todo = [s for s in ablate_samples(condition, samples, seed=config.seed) if s.id not in done]
    if done:
        logger.info("%s: %d samples found in %s, %d to run", condition, len(done), path, len(todo))
    runner = _runner(config, condition, profile)
    evr: dict[str, float] = {}
    for i in range(0, len(todo), config.chunk_size):
        chunk = todo[i : i + config.chunk_size]
        groups = runner.run(chunk, policy)
        _token_text(policy, groups)
        _append(groups, path)
        done.update({g.id: g for g in groups})
        for key, value in runner.stats.extra.items():
            if not key.endswith(("_rate", "_accuracy")):
                evr[key] = evr.get(key, 0.0) + value
    if evr.get("evr/turns_scored"):
        evr["evr/fire_rate"] = evr.get("evr/fires", 0.0) / evr["evr/turns_scored"]
    return [done[s.id] for s in samples if s.id in done], evr


def _judge_fn(spec: str | None) -> JudgeFn | None:
    if not spec:
        return None
    from medgym.rewards.judge import LLMJudge

    url, _, model = spec.partition("|")
    judge = LLMJudge(url, model or "judge")
    return judge.score_many


def evaluate_groups(
    groups: Sequence[Group],
    *,
    judge: JudgeFn | None = None,
    pseudo: Literal["majority", "fpl"] = "majority",
    resamples: int = 1000,
    seed: int = 0,
    config: SessionConfig | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics of one condition and its per-episode records (scored under ``config``)."""
    episodes: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for g in groups:
        s = g.sample
        scores: list[float | None] = [None] * len(g)
        if judge is not None and s.answer is not None:
            scores = list(judge(s.question, g.answers, s.answer, s.options))
        episodes.extend(
            episode_record(t, g, j, config) for t, j in zip(g.trajectories, scores, strict=True)
        )
        samples.append(sample_record(g, pseudo=pseudo))
    metrics = {
        "samples": len(groups),
        "episodes": len(episodes),
        "metrics": headline_metrics(episodes, samples, resamples=resamples, seed=seed),
        "groups": group_metrics(episodes, resamples=resamples, seed=seed),
    }
    return metrics, episodes


def image_reliance(conditions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Accuracy drop from ``main`` under blank and shuffled images (absolute and relative)."""
    base = conditions.get("main", {}).get("metrics", {}).get("accuracy", {}).get("value")
    out: dict[str, Any] = {}
    for name in RELIANCE_ABLATIONS:
        acc = conditions.get(name, {}).get("metrics", {}).get("accuracy", {}).get("value")
        if base is None or acc is None:
            continue
        out[name] = {
            "accuracy": acc,
            "drop": base - acc,
            "retained": acc / base if base > 0 else None,
        }
    return out


def run_eval(
    config: EvalConfig,
    out_dir: str | Path,
    *,
    policy: Policy | None = None,
    samples: Sequence[Sample] | None = None,
    report: bool = True,
) -> EvalResult:
    """Run the main condition and every ablation, write results (and the report).

    Args:
        config: What to evaluate.
        out_dir: Output folder (created; existing trajectories are reused: resumable).
        policy: A ready policy object (overrides building one from ``config.policy``).
        samples: Samples to use instead of loading ``config.data``.
        report: Also write ``report.html``.

    Raises:
        medgym.errors.ConfigError: Ablations asked of a label-reading policy, or no samples.
    """
    from medgym.eval.policies import make_policy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if policy is None:
        policy = make_policy(config.policy)
    if config.ablations and policy.name in LABEL_READING_POLICIES:
        raise ConfigError(
            f"policy `{policy.name}` reads the labels; ablations measure reliance on pixels and "
            "must use a policy that reads them (e.g. scripted:pixel-reader)"
        )
    if samples is None:
        samples = load_samples(config.data, limit=config.limit, **config.data_kwargs)
    elif config.limit is not None:
        samples = list(samples)[: config.limit]
    samples = list(samples)
    if not samples:
        raise ConfigError(f"no samples to evaluate in `{config.data}`")
    judge = _judge_fn(config.judge)
    profile = resolve_profile(config, policy)
    start = time.perf_counter()
    conditions: dict[str, dict[str, Any]] = {}
    all_groups: dict[str, list[Group]] = {}
    for condition in ("main", *config.ablations):
        groups, evr_counts = _run_condition(config, condition, samples, policy, out, profile)
        metrics, episodes = evaluate_groups(
            groups, judge=judge, pseudo=config.pseudo, resamples=config.resamples,
            seed=config.seed, config=config.session_config(condition),
        )  # fmt: skip
        metrics["evr_counters"] = evr_counts  # this invocation's episodes only (not resumed)
        conditions[condition] = metrics
        all_groups[condition] = groups
        ep_path = out / "episodes" / f"{condition}.jsonl"
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        ep_path.write_text("".join(json.dumps(e) + "\n" for e in episodes), encoding="utf-8")
    results = {
        "config": asdict(config),
        "policy_name": policy.name,
        "profile": profile.name,
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": time.perf_counter() - start,
        "conditions": conditions,
        "image_reliance": image_reliance(conditions),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    if report:
        from medgym.eval.report import build_report

        build_report(out)
    return EvalResult(out, results, all_groups)
