"""A session backend on a tool server: what ``tool_server=`` does in the env, and verl's remote.

The session (parsing, budgets, penalties) stays local and unchanged; only the work moves to the
server: tool execution (``/v1/tools/call``, with the session's profile, ``max_pixels``,
``tool_config`` and the registry's aliases) and rendering (``/v1/render``). Images are never
decoded locally: the session gets shape-only stand-ins built from the server's description
(zero-stride arrays, no memory), so observations match the in-process path exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec
from medgym.envs.profiles import ModelProfile
from medgym.serving.client import ToolServerClient
from medgym.serving.schemas import ImageDescription
from medgym.tools.base import Tool, ToolConfig, ToolContext, ToolRegistry, ToolResult

__all__ = ["ServerBackend", "remote_registry", "shape_only_image", "tool_config_dict"]


def shape_only_image(desc: ImageDescription) -> MedImage:
    """A :class:`MedImage` with the described shape and no pixel memory (all zeros, read-only)."""
    dtype = np.uint8 if desc.default_window is None else np.float32
    shape = (desc.num_slices, desc.height, desc.width, desc.channels)
    return MedImage(
        pixels=np.broadcast_to(np.zeros((1, 1, 1, 1), dtype=dtype), shape),
        default_window=desc.default_window, modality=desc.modality, spacing_mm=desc.spacing_mm,
        slice_spacing_mm=desc.slice_spacing_mm,
        meta={"plane": desc.plane} if desc.plane else {},
    )  # fmt: skip


def tool_config_dict(config: ToolConfig) -> dict[str, int | float]:
    """A :class:`ToolConfig` as the JSON the server takes."""
    return dict(dataclasses.asdict(config))


def remote_registry(
    client: ToolServerClient,
    images: tuple[ImageRef, ...],
    profile: ModelProfile,
    tools: ToolRegistry | None = None,
) -> ToolRegistry:
    """``tools`` (default: every medgym tool), each executed on the server for ``images``.

    Arguments are validated locally first (same messages), then sent as the model set them; a
    server-side :class:`~medgym.errors.ToolError` comes back as the same ToolError. Aliases
    (``image_zoom_in_tool``) resolve locally, so the server always sees the tool's own name.
    """
    if tools is None:
        from medgym.tools import TOOLS

        tools = TOOLS

    def make(tool: Tool[Any]) -> Tool[Any]:
        def fn(ctx: ToolContext, params: Any) -> ToolResult:
            r = client.call_tool(
                images, ctx.views, tool.name,
                params.model_dump(mode="json", exclude_unset=True),
                profile=profile.name, max_pixels=profile.max_pixels,
                tool_config=tool_config_dict(ctx.config),
            )  # fmt: skip
            return ToolResult(
                text=r.text, view=r.view, ok=r.ok, penalty=r.penalty, notes=tuple(r.notes)
            )

        return dataclasses.replace(tool, fn=fn)

    return tools.map(make)


class ServerBackend:
    """A :class:`~medgym.envs.backend.ToolBackend` on a medgym tool server.

    Args:
        client: The server's client (one pooled client per server and process is plenty).
        profile: The session's model profile (sent with every call: view sizes, box units).

    Example:
        ``EpisodeSession(sample, profile=p, backend=ServerBackend(client, p))``
    """

    blocking = True

    def __init__(self, client: ToolServerClient, profile: ModelProfile) -> None:
        self.client = client
        self.profile = profile

    def load_images(self, sample: Sample) -> list[MedImage]:
        """Shape-only stand-ins from the server's description of each image (registered there)."""
        return [shape_only_image(self.client.register(ref)) for ref in sample.images]

    def bind(self, sample: Sample, tools: ToolRegistry) -> ToolRegistry:
        """``tools`` run on the server for this sample's images."""
        return remote_registry(self.client, sample.images, self.profile, tools)

    def render(self, sample: Sample, images: Sequence[MedImage], view: ViewSpec) -> np.ndarray:
        """The view's pixels, rendered by the server."""
        return self.client.render(sample.images, view, encoding="raw")

    def __repr__(self) -> str:
        return f"ServerBackend({self.client!r})"
