"""An image-only Qwen2.5-VL processor that ``AutoProcessor`` can load without torchvision.

The stock ``Qwen2_5_VLProcessor`` also owns a video processor, and transformers' video
processors import torchvision. medgym never sends video, so this subclass drops the video
attribute and pairs the tokenizer with the PIL image processor (``Qwen2VLImageProcessorPil``).
:func:`register_processor` makes ``AutoProcessor.from_pretrained`` resolve it by name from a
saved ``processor_config.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import AutoProcessor, PretrainedConfig
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor

__all__ = ["ImageOnlyQwenVLProcessor", "register_processor"]


class ImageOnlyQwenVLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor with a tokenizer and an image processor, and no video processor.

    Args:
        image_processor: A Qwen2-VL image processor (the PIL one needs no torchvision).
        tokenizer: The tokenizer, with ``<|image_pad|>`` and ``<|video_pad|>`` tokens.
        chat_template: Jinja chat template with vision markers.
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Qwen2.5-VL's ``__call__``, with image fields as torch tensors where arrays came back.

        Without ``return_tensors`` (TRL's ``apply_chat_template(tokenize=True)`` per prompt),
        the PIL image processor returns numpy arrays; TRL 1.16's tool loop concatenates only
        torch tensors and otherwise flattens the rows into a list, then calls
        ``image_grid_thw.prod(-1)`` on it and crashes on the first tool turn that brings no new
        image. The fast (torchvision) processor of real checkpoints returns tensors already.
        """
        out = super().__call__(*args, **kwargs)
        for key in ("pixel_values", "image_grid_thw"):
            value = out.get(key) if hasattr(out, "get") else None
            if isinstance(value, np.ndarray):
                out[key] = torch.from_numpy(value)
        return out


class _ImageOnlyKeyConfig(PretrainedConfig):
    """Registry key only: ``AutoProcessor.register`` needs a config class to file it under."""

    model_type = "medgym_image_only_qwen_vl"


_REGISTERED = False


def register_processor() -> None:
    """Let ``AutoProcessor`` find :class:`ImageOnlyQwenVLProcessor` by name (idempotent)."""
    global _REGISTERED
    if not _REGISTERED:
        AutoProcessor.register(_ImageOnlyKeyConfig, ImageOnlyQwenVLProcessor, exist_ok=True)
        _REGISTERED = True
