"""``HFPolicy``: a transformers image-text-to-text model as a medgym policy.

Any model that ``AutoModelForImageTextToText`` + ``AutoProcessor`` load (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, the tiny offline model) works. The session's conversation is rendered through the
processor's chat template; tool schemas go to the template only where the profile does not
already put them into the system prompt. Generation stops at the profile's stop strings
(``</tool_call>``, ``</answer>``) or at EOS, and each generated token carries its exact entropy
and log-probability at the sampling temperature, computed from the raw logits.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medgym.agents.entropy import TokenGeneration, entropy_from_logits, logprobs_from_logits
from medgym.agents.policy import Generation
from medgym.envs.profiles import ModelProfile, load_checkpoint_profile
from medgym.errors import ConfigError

if TYPE_CHECKING:
    from medgym.envs.session import EpisodeSession

__all__ = ["HFPolicy", "SamplingConfig", "render_prompt"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """Sampling parameters of one generation call.

    Attributes:
        max_new_tokens: Cap on generated tokens per turn.
        temperature: Sampling temperature; entropies are reported at this temperature.
        top_p: Nucleus sampling mass (1.0: off).
        top_k: Top-k sampling (0: off).
        do_sample: Sample (``True``) or decode greedily.
    """

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    do_sample: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1; got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0; got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0; got {self.top_k}")


def render_prompt(processor: Any, session: EpisodeSession) -> tuple[str, list[Any]]:
    """The chat-template text and the images (in order) for the session's next turn."""
    messages = session.conversation("hf")
    images = [
        part["image"]
        for m in messages
        if isinstance(m["content"], list)
        for part in m["content"]
        if part.get("type") == "image"
    ]
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
    if session.tool_schemas and not session.profile.tools_in_system_prompt:
        kwargs["tools"] = session.tool_schemas
    text = processor.apply_chat_template(messages, **kwargs)
    return text, images


def encode_prompts(processor: Any, sessions: list[EpisodeSession]) -> Any:
    """Tokenised, left-padded model inputs for a batch of sessions (images expanded)."""
    texts, images = [], []
    for s in sessions:
        text, imgs = render_prompt(processor, s)
        texts.append(text)
        images.extend(imgs)
    processor.tokenizer.padding_side = "left"
    return processor(text=texts, images=images or None, return_tensors="pt", padding=True)


class HFPolicy:
    """Generate turns with a local transformers model.

    Args:
        model: An image-text-to-text model (``eval`` mode).
        processor: Its processor (tokenizer + image processor + chat template).
        sampling: Sampling parameters.
        name: Policy name recorded in trajectories.
        batch_size: Most sessions in one ``generate`` call of :meth:`generate_batch`.
        seed: Seeds torch before each batch (call ``k`` uses ``seed + k``) for reproducible
            sampling; ``None`` leaves torch's global generator alone.
        profile: The model profile the checkpoint was trained with (views, box convention,
            prompts), when known; runners and the evaluation use it unless told otherwise.

    Example:
        >>> policy = HFPolicy.from_pretrained("path/to/model")  # doctest: +SKIP
        >>> groups = GroupRunner(n=4).run(samples, policy)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        sampling: SamplingConfig | None = None,
        name: str = "hf",
        batch_size: int = 8,
        seed: int | None = None,
        profile: ModelProfile | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
        self.model = model
        self.processor = processor
        self.sampling = sampling or SamplingConfig()
        self.name = name
        self.batch_size = batch_size
        self.seed = seed
        self.profile = profile
        self._calls = 0
        self._lock = threading.Lock()
        self.generated_tokens = 0
        self.generate_seconds = 0.0

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str = "cpu", dtype: str | None = None, **kwargs: Any
    ) -> HFPolicy:
        """Load model and processor with the Auto classes (offline if ``HF_HUB_OFFLINE=1``).

        A checkpoint folder that records its profile (``medgym_profile.json``, written by the
        tiny model's builder and by medgym's trainers) sets :attr:`profile`.

        Args:
            path: Local folder or hub id.
            device: Torch device (``cpu``, ``cuda``...).
            dtype: Torch dtype name (``bfloat16``...); default: the checkpoint's.
            **kwargs: Passed to :class:`HFPolicy` (``profile=`` overrides the recorded one).
        """
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from medgym.agents.tiny_vlm.processor import register_processor

        register_processor()
        torch_dtype = getattr(torch, dtype) if dtype else "auto"
        looks_local = str(path).startswith((".", "/", "~")) or Path(path).exists()
        if looks_local and not (Path(path).expanduser() / "config.json").is_file():
            raise ConfigError(
                f"no model checkpoint at {path}: expected a folder with config.json (a saved "
                "Hugging Face model, e.g. from `medgym learning` or run_trl.py)"
            )
        model: Any = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype)
        processor = AutoProcessor.from_pretrained(path)
        if kwargs.get("profile") is None and Path(path).is_dir():
            kwargs["profile"] = load_checkpoint_profile(path)
        return cls(model.to(device).eval(), processor, **kwargs)

    def with_sampling(self, **changes: Any) -> HFPolicy:
        """A policy sharing this model with some sampling fields changed (EVR branches)."""
        from dataclasses import replace

        new = copy.copy(self)
        new.sampling = replace(self.sampling, **changes)
        return new

    @property
    def device(self) -> Any:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    async def generate(self, session: EpisodeSession) -> Generation:
        """Generate the next turn of one session (in a worker thread)."""
        return (await self.generate_batch([session]))[0]

    async def generate_batch(self, sessions: list[EpisodeSession]) -> list[Generation]:
        """Generate the next turn of several sessions, ``batch_size`` at a time."""
        return await asyncio.to_thread(self.generate_batch_sync, sessions)

    def generate_batch_sync(
        self, sessions: list[EpisodeSession], *, temperature: float | None = None
    ) -> list[Generation]:
        """Blocking batched generation.

        Args:
            sessions: Sessions whose next turn to generate (not finished).
            temperature: Override of the sampling temperature (EVR branches sample hotter).
        """
        out: list[Generation] = []
        for i in range(0, len(sessions), self.batch_size):
            out += self._generate_chunk(sessions[i : i + self.batch_size], temperature)
        return out

    def _generate_chunk(
        self, sessions: list[EpisodeSession], temperature: float | None
    ) -> list[Generation]:
        import time

        import torch

        cfg = self.sampling
        tau = temperature if temperature is not None else cfg.temperature
        if not tau > 0:
            raise ConfigError(f"temperature must be > 0; got {tau}")
        stops = sorted({s for sess in sessions for s in sess.profile.stop})
        with self._lock:
            inputs = encode_prompts(self.processor, sessions).to(self.device)
            if self.seed is not None:
                torch.manual_seed(self.seed + self._calls)
            self._calls += 1
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": cfg.max_new_tokens,
                "do_sample": cfg.do_sample,
                "output_logits": True,
                "return_dict_in_generate": True,
                "stop_strings": stops or None,
                "tokenizer": self.processor.tokenizer,
            }
            if cfg.do_sample:
                gen_kwargs.update(temperature=tau, top_p=cfg.top_p, top_k=cfg.top_k)
            start = time.perf_counter()
            with torch.inference_mode():
                result = self.model.generate(**inputs, **gen_kwargs)
            self.generate_seconds += time.perf_counter() - start
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = result.sequences[:, prompt_len:]
        logits = torch.stack(result.logits, dim=1)  # (batch, steps, vocab)
        ents = entropy_from_logits(logits, tau)
        out: list[Generation] = []
        for b, session in enumerate(sessions):
            ids = new_ids[b].tolist()
            n = self._turn_length(ids, session.profile.stop)
            lps = logprobs_from_logits(logits[b, :n], new_ids[b, :n], tau)
            text = self.processor.tokenizer.decode(ids[:n], skip_special_tokens=True)
            self.generated_tokens += n
            out.append(
                TokenGeneration(
                    text=_cut_after_stop(text, session.profile.stop),
                    token_ids=ids[:n],
                    logprobs=lps.tolist(),
                    entropies=ents[b, :n].tolist(),
                    pieces=self.processor.tokenizer.batch_decode([[t] for t in ids[:n]]),
                )
            )
        return out

    def _turn_length(self, ids: list[int], stops: tuple[str, ...]) -> int:
        """Tokens of the turn: up to the first stop string, or before EOS/padding."""
        tok = self.processor.tokenizer
        ends = {tok.eos_token_id, tok.pad_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        ends |= set(gen_eos) if isinstance(gen_eos, list) else {gen_eos}
        n = next((i for i, t in enumerate(ids) if t in ends), len(ids))
        if stops:
            # Token by token (stop strings are ASCII, so per-token pieces find them exactly);
            # only the tail that can hold a new match is searched.
            longest = max(len(s) for s in stops)
            text = ""
            for k, piece in enumerate(tok.batch_decode([[t] for t in ids[:n]]), start=1):
                text += piece
                tail = text[-(longest + len(piece)) :]
                if any(s in tail for s in stops):
                    return k
        return n


def _cut_after_stop(text: str, stops: tuple[str, ...]) -> str:
    """Drop anything after the first stop string (a last token may run past it)."""
    hits = [(text.find(s), s) for s in stops if s in text]
    if not hits:
        return text
    pos, stop = min(hits)
    return text[: pos + len(stop)]
