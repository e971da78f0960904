"""``RLHFDataset`` for medgym parquet without qwen_vl_utils (which imports torchvision).

The parquet's images are already rendered at the profile's view size (multiples of the
vision patch), so the images are taken from the messages as they are, in order. Select it with
``data.custom_cls.path=pkg://medgym.integrations.verl.dataset`` and
``data.custom_cls.name=MedgymRLHFDataset``.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from PIL import Image
from verl.utils.dataset.rl_dataset import RLHFDataset

from medgym.errors import ConfigError

__all__ = ["MedgymRLHFDataset", "message_images"]

# verl hands the same prompt (and its image objects) to the n sessions of a uid, which decode
# them concurrently in executor threads: a lazily opened PIL image must be decoded only once.
_DECODE_LOCK = threading.Lock()


def _as_pil(item: dict[str, Any]) -> Image.Image:
    image = item.get("image")
    if isinstance(image, Image.Image):
        with _DECODE_LOCK:
            image.load()
        return image.convert("RGB")
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(image)).convert("RGB")
    if isinstance(item.get("bytes"), (bytes, bytearray)):
        return Image.open(io.BytesIO(item["bytes"])).convert("RGB")
    raise ConfigError(
        f"expected an image item with a PIL image or PNG bytes; got keys {sorted(item)}"
    )


def message_images(messages: list[dict[str, Any]]) -> list[Image.Image] | None:
    """The images of chat messages, in order (``None`` when there are none)."""
    out = [
        _as_pil(item)
        for msg in messages
        if isinstance(msg.get("content"), list)
        for item in msg["content"]
        if isinstance(item, dict) and item.get("type") == "image"
    ]
    return out or None


class MedgymRLHFDataset(RLHFDataset):
    """verl's dataset with image extraction that needs neither qwen_vl_utils nor torchvision."""

    # verl annotates non-optional lists but passes None for absent videos itself; same here.
    @classmethod
    def _process_multi_modal_info(  # type: ignore[override]
        cls, messages: list[dict[str, Any]], image_patch_size: int, config: Any
    ) -> tuple[list[Image.Image] | None, None, None]:
        return message_images(messages), None, None

    @classmethod
    async def process_vision_info(  # type: ignore[override]
        cls, messages: list[dict[str, Any]], image_patch_size: int, config: Any
    ) -> tuple[list[Image.Image] | None, None]:
        """Images of the messages (no videos)."""
        return message_images(messages), None
