"""Observation spaces: free text in any script, and images of any size."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["CHARSET", "ImageSpace", "make_observation_space", "sanitize_text"]


def _charset() -> str:
    # Gymnasium's default Text charset is alphanumeric only: no spaces, no punctuation, no
    # non-Latin letters. Observations carry prompts in any language, so admit every printable
    # character of the Basic Multilingual Plane plus newline and tab.
    extra = (chr(c) for c in range(0xA0, 0x10000) if chr(c).isprintable())
    return string.printable + "".join(extra)


CHARSET = _charset()
_CHARSET_SET = frozenset(CHARSET)
REPLACEMENT = "\ufffd"


def sanitize_text(text: str) -> str:
    """Replace characters outside :data:`CHARSET` (controls, astral-plane symbols) with U+FFFD."""
    if all(c in _CHARSET_SET for c in text):
        return text
    return "".join(c if c in _CHARSET_SET else REPLACEMENT for c in text)


class ImageSpace(spaces.Space[np.ndarray]):
    """Any ``(height, width, channels)`` uint8 image; sizes differ from view to view.

    Args:
        channels: Required channel count.
        max_side: Largest side accepted (and the bound of :meth:`sample`).
    """

    def __init__(self, channels: int = 3, max_side: int = 4096, seed: int | None = None) -> None:
        self.channels = channels
        self.max_side = max_side
        super().__init__(shape=None, dtype=np.uint8, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Images of varying size cannot be flattened into one vector."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A random image of random size (at most 64 px a side, to stay cheap)."""
        h, w = self.np_random.integers(1, min(64, self.max_side) + 1, size=2)
        return self.np_random.integers(0, 256, size=(h, w, self.channels), dtype=np.uint8)

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is an ``(H, W, channels)`` uint8 array within ``max_side``."""
        return (
            isinstance(x, np.ndarray)
            and x.dtype == np.uint8
            and x.ndim == 3
            and x.shape[2] == self.channels
            and 0 < x.shape[0] <= self.max_side
            and 0 < x.shape[1] <= self.max_side
        )

    def __repr__(self) -> str:
        return f"ImageSpace(channels={self.channels}, max_side={self.max_side})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ImageSpace)
            and other.channels == self.channels
            and other.max_side == self.max_side
        )


def make_observation_space(max_text: int = 65_536, max_side: int = 4096) -> spaces.Dict:
    """``Dict(text=Text, images=Sequence(ImageSpace))``: one step's message and its new images."""
    return spaces.Dict(
        {
            "text": spaces.Text(max_length=max_text, min_length=0, charset=CHARSET),
            "images": spaces.Sequence(ImageSpace(max_side=max_side), stack=False),
        }
    )
