"""``ForcedPolicy``: feed known text through a real model and report the model's own numbers.

Each turn's text (or token ids) is given; one forward pass over prompt + forced tokens yields
the log-probability and the exact entropy of every forced token's next-token distribution. Tests
drive a real model along a known path this way (EVR on real entropies, checks of the
generation path), and it scores any trajectory under a model (teacher forcing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from medgym.agents.entropy import entropy_from_logits, logprobs_from_logits
from medgym.agents.hf_policy import encode_prompts
from medgym.agents.policy import Generation
from medgym.errors import ConfigError

if TYPE_CHECKING:
    from medgym.envs.session import EpisodeSession

__all__ = ["ForcedPolicy", "score_continuation"]

Forced = str | Sequence[int]
_PER_TOKEN = {"attention_mask": 1, "mm_token_type_ids": 0, "token_type_ids": 0}


def score_continuation(
    model: Any, processor: Any, session: EpisodeSession, token_ids: Sequence[int], *,
    temperature: float = 1.0,
) -> tuple[list[float], list[float]]:  # fmt: skip
    """Log-probabilities and entropies of ``token_ids`` as the session's next turn.

    Returns:
        ``(logprobs, entropies)``, one value per token; entropy ``i`` is that of the distribution
        token ``i`` was drawn from, at ``temperature``.
    """
    import torch

    ids = list(token_ids)
    if not ids:
        return [], []
    inputs = encode_prompts(processor, [session]).to(next(model.parameters()).device)
    forced = torch.tensor([ids], dtype=inputs["input_ids"].dtype, device=inputs["input_ids"].device)
    prompt_len = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], forced], dim=1)
    # Per-token side inputs grow with the forced (text) tokens: attended, not multimodal.
    for key, fill in _PER_TOKEN.items():
        if key in inputs:
            inputs[key] = torch.cat([inputs[key], torch.full_like(forced, fill)], dim=1)
    with torch.inference_mode():
        logits = model(**inputs).logits[0, prompt_len - 1 : prompt_len - 1 + len(ids)]
    lps = logprobs_from_logits(logits, forced[0], temperature)
    return lps.tolist(), entropy_from_logits(logits, temperature).tolist()


class ForcedPolicy:
    """Replays given turns through a model, reporting its real logprobs and entropies.

    Args:
        model: An image-text-to-text model.
        processor: Its processor.
        turns: Per model turn, the text or token ids to force; or a function of the session
            returning them.
        temperature: Temperature the entropies and logprobs are computed at.
        name: Policy name.

    Raises:
        ConfigError: From :meth:`generate` when ``turns`` runs out.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        turns: Sequence[Forced] | Callable[[EpisodeSession], Forced],
        *,
        temperature: float = 1.0,
        name: str = "forced",
    ) -> None:
        self.model = model
        self.processor = processor
        self.turns = turns
        self.temperature = temperature
        self.name = name

    def _forced(self, session: EpisodeSession) -> Forced:
        if callable(self.turns):
            return self.turns(session)
        k = int(session.metrics["turns"])
        if k >= len(self.turns):
            raise ConfigError(
                f"ForcedPolicy has {len(self.turns)} turn(s) but the session asks for turn {k + 1}"
            )
        return self.turns[k]

    def score(self, session: EpisodeSession, forced: Forced) -> Generation:
        """The :class:`Generation` of ``forced`` (text or token ids) as the next turn."""
        tok = self.processor.tokenizer
        if isinstance(forced, str):
            ids = tok.encode(forced, add_special_tokens=False)
            text = forced
        else:
            ids = [int(t) for t in forced]
            text = tok.decode(ids, skip_special_tokens=True)
        lps, ents = score_continuation(
            self.model, self.processor, session, ids, temperature=self.temperature
        )
        return Generation(text=text, token_ids=ids, logprobs=lps, entropies=ents)

    async def generate(self, session: EpisodeSession) -> Generation:
        """Force this turn's text through the model."""
        import asyncio

        return await asyncio.to_thread(self.score, session, self._forced(session))
