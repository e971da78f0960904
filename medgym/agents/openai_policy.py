"""``OpenAIPolicy``: any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted APIs).

Uses the official ``openai`` client: images travel as PNG data URLs, tool schemas go to the
endpoint only where the profile does not already put them into the system prompt (structured
``tool_calls`` in a reply are turned back into Hermes ``<tool_call>`` text, which the session
parses), and ``logprobs`` + ``top_logprobs`` give a per-token entropy estimate (a truncated one:
see :func:`medgym.agents.entropy.truncated_entropy` for its bias). Concurrency is bounded per
policy; timeouts and retries are the client's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from medgym.agents.entropy import TailMode, TokenGeneration, truncated_entropy
from medgym.errors import ConfigError, DependencyNotInstalled, MedGymError

if TYPE_CHECKING:
    from medgym.envs.session import EpisodeSession

__all__ = ["EndpointError", "OpenAIPolicy", "OpenAIPolicyConfig"]

logger = logging.getLogger(__name__)


class EndpointError(MedGymError, RuntimeError):
    """The endpoint failed (after retries) or answered something that is not a chat completion."""


@dataclass(frozen=True, kw_only=True)
class OpenAIPolicyConfig:
    """Settings of an :class:`OpenAIPolicy`.

    Attributes:
        model: Model name the endpoint serves.
        base_url: Endpoint URL (``http://host:port/v1``); ``None``: the client's default.
        api_key: API key (``"EMPTY"`` for local servers).
        max_tokens: Cap on generated tokens per turn.
        temperature: Sampling temperature.
        top_p: Nucleus sampling mass.
        top_logprobs: Alternatives per token to request (0: no logprobs, no entropy).
        tail: Entropy estimator for the missing tail mass (``lump`` or ``renorm``).
        concurrency: Requests in flight at once per policy.
        timeout: Seconds per request.
        max_retries: Client retries on connection errors, timeouts, 429 and 5xx.
        on_error: ``raise`` an :class:`EndpointError`, or return an ``empty`` turn (the session
            records a format error and the rollout goes on).
        extra_body: Extra JSON fields (vLLM's ``top_k``, ``repetition_penalty``...).
    """

    model: str
    base_url: str | None = None
    api_key: str = "EMPTY"
    max_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_logprobs: int = 5
    tail: TailMode = "lump"
    concurrency: int = 16
    timeout: float = 60.0
    max_retries: int = 2
    on_error: Literal["raise", "empty"] = "raise"
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model must be a non-empty model name")
        if self.max_tokens < 1 or self.concurrency < 1 or self.max_retries < 0:
            raise ConfigError(
                "need max_tokens >= 1, concurrency >= 1, max_retries >= 0; got "
                f"{self.max_tokens}, {self.concurrency}, {self.max_retries}"
            )
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError(f"top_logprobs must be in [0, 20]; got {self.top_logprobs}")
        if not self.timeout > 0 or self.temperature < 0:
            raise ConfigError(
                f"need timeout > 0 and temperature >= 0; got {self.timeout}, {self.temperature}"
            )
        if self.on_error not in ("raise", "empty"):
            raise ConfigError(f"on_error must be 'raise' or 'empty'; got {self.on_error!r}")
        if self.tail not in ("lump", "renorm"):
            raise ConfigError(f"tail must be 'lump' or 'renorm'; got {self.tail!r}")


def restore_stop(text: str, stops: tuple[str, ...]) -> str:
    """Re-append a closing-tag stop string the server cut off (OpenAI APIs drop the stop)."""
    for stop in stops:
        if stop.startswith("</"):
            opening = "<" + stop[2:]
            if text.rfind(opening) > text.rfind(stop):
                return text + stop
    return text


def tool_calls_to_text(tool_calls: list[Any]) -> str:
    """Structured ``tool_calls`` of a reply as Hermes ``<tool_call>`` blocks."""
    blocks = []
    for call in tool_calls:
        fn = call.function
        try:
            args = json.loads(fn.arguments or "{}")
        except json.JSONDecodeError:
            args = fn.arguments  # the session reports the malformed JSON to the model
        blocks.append(
            "<tool_call>\n" + json.dumps({"name": fn.name, "arguments": args}) + "\n</tool_call>"
        )
    return "\n".join(blocks)


class OpenAIPolicy:
    """Generate turns through an OpenAI-compatible chat completions endpoint.

    Args:
        config: Endpoint and sampling settings.
        name: Policy name (default: the model name).

    Example:
        >>> policy = OpenAIPolicy(OpenAIPolicyConfig(model="qwen2.5-vl-7b",
        ...                                          base_url="http://127.0.0.1:8000/v1"))
        >>> policy.name
        'qwen2.5-vl-7b'
    """

    def __init__(self, config: OpenAIPolicyConfig, *, name: str | None = None) -> None:
        self.config = config
        self.name = name or config.model
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        self.requests = 0
        self.failures = 0

    def _client_for_loop(self) -> tuple[Any, asyncio.Semaphore]:
        # The client's HTTP pool and the semaphore belong to one event loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._sem is None:
            try:
                from openai import AsyncOpenAI
            except ImportError as e:
                raise DependencyNotInstalled.for_extra("openai", "hf") from e
            cfg = self.config
            self._client = AsyncOpenAI(
                base_url=cfg.base_url, api_key=cfg.api_key, timeout=cfg.timeout,
                max_retries=cfg.max_retries,
            )  # fmt: skip
            self._sem = asyncio.Semaphore(cfg.concurrency)
            self._loop = loop
        return self._client, self._sem

    def request(self, session: EpisodeSession) -> dict[str, Any]:
        """The keyword arguments of the chat completion request for the session's next turn."""
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "messages": session.conversation("openai"),
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "stop": list(session.profile.stop)[:4] or None,  # the API accepts up to 4
        }
        if cfg.top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=cfg.top_logprobs)
        if session.tool_schemas and not session.profile.tools_in_system_prompt:
            kwargs["tools"] = session.tool_schemas
        if cfg.extra_body:
            kwargs["extra_body"] = dict(cfg.extra_body)
        return kwargs

    async def generate(self, session: EpisodeSession) -> TokenGeneration:
        """Request the next turn; see ``on_error`` for failures.

        Raises:
            EndpointError: When the request fails after retries or the reply is malformed,
                and ``on_error="raise"``.
        """
        import openai

        client, sem = self._client_for_loop()
        async with sem:
            self.requests += 1
            try:
                reply = await client.chat.completions.create(**self.request(session))
                return self._parse(reply, session.profile.stop)
            except (openai.OpenAIError, EndpointError) as e:
                self.failures += 1
                if self.config.on_error == "empty":
                    logger.warning("endpoint error, returning an empty turn: %s", e)
                    return TokenGeneration(text="")
                if isinstance(e, EndpointError):
                    raise
                raise EndpointError(
                    f"chat completion request to {self.config.base_url or 'the default endpoint'}"
                    f" for model {self.config.model!r} failed: {type(e).__name__}: {e}"
                ) from e

    def _parse(self, reply: Any, stops: tuple[str, ...]) -> TokenGeneration:
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise EndpointError(
                f"expected a chat completion with at least one choice; got {str(reply)[:200]!r}"
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise EndpointError(f"the reply's first choice has no message: {str(choice)[:200]!r}")
        text = message.content or ""
        if getattr(message, "tool_calls", None):
            text = (text + "\n" if text else "") + tool_calls_to_text(message.tool_calls)
        elif choice.finish_reason == "stop":
            text = restore_stop(text, stops)
        content = getattr(getattr(choice, "logprobs", None), "content", None) or []
        if not content:
            return TokenGeneration(text=text)
        tail = self.config.tail
        return TokenGeneration(
            text=text,
            logprobs=[float(c.logprob) for c in content],
            entropies=[
                truncated_entropy([t.logprob for t in (c.top_logprobs or [c])], tail=tail)
                for c in content
            ],
            pieces=[c.token for c in content],
        )
