"""Stand-ins for verl's LLM server manager, for CPU dry runs and tests (no GPU, no Ray).

:class:`ScriptedServer` replays fixed texts; :class:`ModelServer` samples from a local
transformers model (the tiny offline Qwen2.5-VL in ``run_verl.py --dry-run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verl.workers.rollout.replica import TokenOutput

__all__ = ["ModelServer", "ScriptedServer"]


class ScriptedServer:
    """Answers ``generate`` with the next scripted text (the last one repeats); records calls.

    Args:
        tokenizer: Tokenizer that encodes the texts.
        texts: The turns to return, in order.
    """

    def __init__(self, tokenizer: Any, texts: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.texts = list(texts)
        self.calls: list[dict[str, Any]] = []

    async def generate(
        self,
        *,
        request_id: str,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """The next scripted turn as token ids, with a constant log-probability per token."""
        self.calls.append(
            {
                "request_id": request_id,
                "prompt_ids": list(prompt_ids),
                "images": list(image_data or []),
            }
        )
        text = self.texts[min(len(self.calls) - 1, len(self.texts) - 1)]
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")


class ModelServer:
    """Samples turns from a local image-text model (CPU), like vLLM with ``logprobs=0``.

    Args:
        model: A transformers image-text model in eval mode.
        processor: Its processor (builds pixel inputs for the prompt's images).
        max_new_tokens: Tokens per turn.
    """

    def __init__(self, model: Any, processor: Any, *, max_new_tokens: int = 32) -> None:
        self.model = model
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.calls = 0

    async def generate(
        self,
        *,
        request_id: str,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Sample one turn; returns the sampled tokens and their log-probabilities."""
        import anyio

        self.calls += 1
        return await anyio.to_thread.run_sync(lambda: self._sample(prompt_ids, image_data))

    def _sample(self, prompt_ids: list[int], images: list[Any] | None) -> TokenOutput:
        import torch

        inputs: dict[str, Any] = {"input_ids": torch.tensor([prompt_ids])}
        if images:
            pix = self.processor.image_processor(images=images, return_tensors="pt")
            inputs.update(pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"])
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=True,
                output_scores=True,
                return_dict_in_generate=True,
            )
        new = out.sequences[0, len(prompt_ids) :].tolist()
        logps = [
            float(torch.log_softmax(s[0].float(), -1)[t])
            for s, t in zip(out.scores, new, strict=False)
        ]
        return TokenOutput(token_ids=new, log_probs=logps, stop_reason="completed")
