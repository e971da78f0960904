"""LLM judge (MediX-R1): strict YES/NO against a reference through an OpenAI-compatible endpoint.

Exact matches (after normalisation) score 1 without a request; empty and over-long answers score
0 without one. Verdicts are cached, requests time out and are retried with back-off, and
``rounds > 1`` takes the majority of several verdicts (MediX-R1's evaluation uses three).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from medgym.core.answers import clean_answer, closed_match, resolve_option
from medgym.core.trajectory import Group
from medgym.errors import ConfigError, DependencyNotInstalled, MedGymError
from medgym.rewards.group import GroupRewardResult, register_group_reward
from medgym.rewards.pseudo import group_answers, majority_label

__all__ = ["JUDGE_SYSTEM_PROMPT", "JudgeError", "JudgeReward", "LLMJudge"]

logger = logging.getLogger(__name__)

JUDGE_SYSTEM_PROMPT = (
    "You are a strict medical grader. Decide whether the candidate answer means the same as the "
    "reference answer for the question. Reply with exactly one word: YES or NO."
)


class JudgeError(MedGymError, RuntimeError):
    """The judge endpoint failed after every retry, or never answered YES or NO."""


def _parse_verdict(text: str) -> float | None:
    words = text.strip().strip("*`'\".").split()
    if not words:
        return None
    head = words[0].strip(".,:;!*`'\"").upper()
    return 1.0 if head == "YES" else 0.0 if head == "NO" else None


class LLMJudge:
    """A YES/NO judge over ``POST {base_url}/chat/completions``.

    Args:
        base_url: Up to and including ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name sent in the request.
        api_key: Bearer token; default ``$OPENAI_API_KEY`` when set.
        timeout_s: Per-request timeout in seconds.
        retries: Extra attempts after a failed or unparseable reply.
        rounds: Verdicts per item; the majority wins (use an odd number).
        temperature: Sampling temperature (``> 0`` makes several rounds differ).
        cache_size: Verdicts kept (LRU).
        on_error: ``"zero"`` scores an item 0 when the judge keeps failing (logged), ``"raise"``
            raises :class:`JudgeError`.
        max_workers: Items judged concurrently by :meth:`score_many`.
        client: An ``httpx.Client`` to use (tests pass one with a mock transport).

    Example:
        >>> judge = LLMJudge("http://127.0.0.1:9/v1", "m")  # no request for an exact match
        >>> judge.score("Is it CT?", "Computed tomography", "CT")
        1.0
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 2,
        rounds: int = 1,
        temperature: float = 0.0,
        cache_size: int = 100_000,
        on_error: Literal["zero", "raise"] = "zero",
        max_workers: int = 8,
        client: Any = None,
    ) -> None:
        if retries < 0 or rounds < 1 or timeout_s <= 0 or cache_size < 1 or max_workers < 1:
            raise ConfigError(
                "need retries >= 0, rounds >= 1, timeout_s > 0, cache_size >= 1, max_workers >= 1;"
                f" got {retries}, {rounds}, {timeout_s}, {cache_size}, {max_workers}"
            )
        if on_error not in ("zero", "raise"):
            raise ConfigError(f"on_error must be 'zero' or 'raise'; got {on_error!r}")
        try:
            import httpx
        except ImportError as e:
            raise DependencyNotInstalled.for_extra("httpx", "rewards") from e
        self._httpx = httpx
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.retries, self.rounds = model, retries, rounds
        self.temperature, self.on_error, self.max_workers = temperature, on_error, max_workers
        self.cache_size = cache_size
        self.requests = 0
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = client or httpx.Client(timeout=timeout_s, headers=headers)
        self._cache: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def _messages(self, question: str, prediction: str, reference: str) -> list[dict[str, str]]:
        user = (
            f"Question: {question}\nReference answer: {reference}\n"
            f"Candidate answer: {prediction}\nDoes the candidate mean the same as the reference? "
            "Answer YES or NO."
        )
        return [
            {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ]

    def _ask(self, messages: list[dict[str, str]]) -> float:
        httpx = self._httpx
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": 4,
        }
        last: Exception | str = "no reply"
        for attempt in range(self.retries + 1):
            try:
                with self._lock:
                    self.requests += 1
                r = self._client.post(self.url, json=body)
                r.raise_for_status()
                content = r.json()["choices"][0]["message"]["content"] or ""
                verdict = _parse_verdict(content)
                if verdict is not None:
                    return verdict
                last = f"reply {content[:40]!r} is neither YES nor NO"
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
                last = e
            logger.warning("judge attempt %d failed: %s", attempt + 1, last)
            if attempt < self.retries:
                time.sleep(min(0.05 * 2**attempt, 2.0))
        raise JudgeError(f"{self.url}: no YES/NO after {self.retries + 1} tries: {last}")

    def score(
        self, question: str, prediction: object, reference: str, options: Sequence[str] = ()
    ) -> float:
        """1.0 when the judge (or an exact match) says ``prediction`` means ``reference``.

        Empty, over-long and one-character answers (after option letters are resolved) score 0.
        """
        pred = resolve_option(clean_answer(prediction), options).strip()
        if len(pred) < 2:  # MediX-R1: empty and one-character answers score 0
            return 0.0
        if closed_match(pred, reference, options):
            return 1.0
        ref = resolve_option(reference, options)
        key = (question, pred, ref)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            votes = [self._ask(self._messages(question, pred, ref)) for _ in range(self.rounds)]
        except JudgeError:
            if self.on_error == "raise":
                raise
            logger.warning("judge failed for %r; scoring 0", pred[:60])
            return 0.0
        verdict = float(sum(votes) * 2 > len(votes))
        with self._lock:
            self._cache[key] = verdict
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verdict

    def score_many(
        self,
        question: str,
        predictions: Sequence[object],
        reference: str,
        options: Sequence[str] = (),
    ) -> list[float]:
        """Judge several answers to one question concurrently (duplicates are asked once)."""
        distinct = list(dict.fromkeys(clean_answer(p) for p in predictions))
        if len(distinct) <= 1 or self.max_workers == 1:
            got = {d: self.score(question, d, reference, options) for d in distinct}
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(distinct))) as pool:
                vals = pool.map(lambda d: self.score(question, d, reference, options), distinct)
                got = dict(zip(distinct, vals, strict=True))
        return [got[clean_answer(p)] for p in predictions]

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


@register_group_reward("judge")
class JudgeReward:
    """The judge's verdict against the label, or the majority pseudo label when there is none.

    Args:
        judge: An :class:`LLMJudge`, or ``None`` to build one from ``**judge_options``.
        **judge_options: ``base_url``, ``model`` and the other :class:`LLMJudge` arguments.
    """

    name = "judge"

    def __init__(self, judge: LLMJudge | None = None, **judge_options: Any) -> None:
        if judge is None:
            if "base_url" not in judge_options or "model" not in judge_options:
                raise ConfigError("the judge reward needs `judge` or `base_url` and `model`")
            judge = LLMJudge(**judge_options)
        self.judge = judge

    def reward(self, group: Group) -> GroupRewardResult:
        """Judge every rollout's answer."""
        s = group.sample
        diag: dict[str, Any] = {"skipped": False, "reference": "label"}
        ref = s.answer
        if ref is None:
            label = majority_label(group_answers(group))
            ref = label.text
            diag.update(reference="pseudo", pseudo_label=ref, confidence=label.confidence)
        if not ref:
            values = [0.0] * len(group)
        else:
            values = self.judge.score_many(s.question, group.answers, ref, s.options)
        return GroupRewardResult(values, {"judge": list(values)}, diag)
