"""The chat history of an episode, kept once and rendered per format on demand.

Messages are appended once per turn and reference images by view index, so a step costs O(1);
:meth:`Conversation.render` converts the whole history into the format a caller needs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from medgym.core.trajectory import Turn
from medgym.errors import ConfigError

__all__ = ["FORMATS", "Conversation", "hf_parts", "png_data_url", "reply_parts"]

FORMATS = ("spec", "hf", "openai", "text")
PLACEHOLDER = "<image>"
"""The image marker of :class:`Conversation`'s text format when no profile names another."""

PixelsFn = Callable[[int], np.ndarray]


def png_data_url(pixels: np.ndarray) -> str:
    """Encode RGB pixels as a ``data:image/png;base64,...`` URL (fast PNG compression)."""
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not ok:
        raise ConfigError(f"could not PNG-encode an image of shape {pixels.shape}")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def reply_parts(
    text: str, views: Sequence[int], placeholder: str = PLACEHOLDER
) -> list[dict[str, Any]]:
    """An environment reply as chat content parts: the one splitter every adapter uses.

    ``text`` is split at the profile's image ``placeholder``; the k-th placeholder becomes
    ``{"type": "image", "view": views[k]}`` and the text between them ``{"type": "text"}`` parts.
    The gym conversation, the verl agent loop and TRL's tool replies all build their messages
    here (then :func:`hf_parts` puts pixels in).

    Example:
        >>> [p["type"] for p in reply_parts("zoomed <image>; look", [1])]
        ['text', 'image', 'text']
    """
    pieces = text.split(placeholder)
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(pieces) - 1 and i < len(views):
            parts.append({"type": "image", "view": views[i]})
    return parts


def hf_parts(parts: Sequence[dict[str, Any]], pixels: PixelsFn) -> list[dict[str, Any]]:
    """``{"type": "image", "view": i}`` parts as ``{"type": "image", "image": PIL.Image}``."""
    from PIL import Image

    return [
        p
        if p["type"] != "image"
        else {"type": "image", "image": Image.fromarray(pixels(p["view"]))}
        for p in parts
    ]


class Conversation:
    """Messages of one episode with images as view indices.

    Args:
        system: System prompt.
        question: First user message text (without image markers).
        num_images: Number of sample images shown before the question (views ``0..n-1``).
        placeholder: The profile's image marker in observation texts.
    """

    def __init__(
        self, system: str, question: str, num_images: int, placeholder: str = PLACEHOLDER
    ) -> None:
        self.placeholder = placeholder
        first = [{"type": "image", "view": i} for i in range(num_images)]
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": [*first, {"type": "text", "text": question}]},
        ]
        self._urls: dict[int, str] = {}

    def add_turn(self, turn: Turn) -> None:
        """Append a model turn and the environment's reply."""
        if turn.action:
            self.messages.append(
                {"role": "assistant", "content": [{"type": "text", "text": turn.action}]}
            )
        if turn.observation:
            self.messages.append(
                {
                    "role": turn.role,
                    "content": reply_parts(turn.observation, turn.new_views, self.placeholder),
                }
            )

    def copy(self) -> Conversation:
        """A copy that can grow independently (messages are never mutated once added)."""
        new = object.__new__(Conversation)
        new.placeholder = self.placeholder
        new.messages = list(self.messages)
        new._urls = dict(self._urls)  # after a fork, the same view index may name different views
        return new

    def render(self, fmt: str, pixels: PixelsFn) -> list[dict[str, Any]]:
        """The history in one of :data:`FORMATS`.

        - ``spec``: images as ``{"type": "image", "view": i}`` (no pixels; cheapest).
        - ``hf``: images as ``{"type": "image", "image": PIL.Image}`` for HF processors.
        - ``openai``: images as PNG data URLs; ``tool`` turns become ``user`` turns (tool results
          arrive as text the model wrote, not as structured tool calls).
        - ``text``: content as one string with ``<image>`` markers.
        """
        if fmt not in FORMATS:
            raise ConfigError(f"unknown conversation format {fmt!r}; expected one of {FORMATS}")
        if fmt == "spec":
            return [dict(m, content=list(m["content"])) for m in self.messages]
        out = []
        for m in self.messages:
            role = m["role"]
            if fmt == "text":
                content: Any = "".join(
                    p["text"] if p["type"] == "text" else self.placeholder for p in m["content"]
                )
            elif fmt == "hf":
                content = hf_parts(m["content"], pixels)
            else:
                role = "user" if role == "tool" else role
                content = [
                    p
                    if p["type"] == "text"
                    else {"type": "image_url", "image_url": {"url": self._url(p["view"], pixels)}}
                    for p in m["content"]
                ]
                if role in ("assistant", "system"):
                    content = "".join(p["text"] for p in content if p["type"] == "text")
            out.append({"role": role, "content": content})
        return out

    def _url(self, view: int, pixels: PixelsFn) -> str:
        url = self._urls.get(view)
        if url is None:
            url = self._urls[view] = png_data_url(pixels(view))
        return url
