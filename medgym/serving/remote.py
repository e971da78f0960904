"""Run an episode with tools and pixels on a tool server: what ``tool_server=`` does in the env.

The session (parsing, budgets, penalties) stays local and unchanged; only two things move to the
server: tool execution (a :class:`~medgym.tools.base.ToolRegistry` whose tools call
``/v1/tools/call``) and rendering (:meth:`RemoteEpisodeSession.pixels` calls ``/v1/render``).
Images are never decoded locally: the session gets shape-only stand-ins built from the server's
description (zero-stride arrays, no memory), so observations match the in-process path exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import ModelProfile
from medgym.envs.session import EpisodeSession
from medgym.serving.client import ToolServerClient
from medgym.serving.schemas import ImageDescription
from medgym.tools import ALIASES, TOOLS
from medgym.tools.base import Tool, ToolConfig, ToolContext, ToolRegistry, ToolResult

__all__ = ["RemoteEpisodeSession", "remote_registry", "shape_only_image", "tool_config_dict"]


def shape_only_image(desc: ImageDescription) -> MedImage:
    """A :class:`MedImage` with the described shape and no pixel memory (all zeros, read-only)."""
    dtype = np.uint8 if desc.default_window is None else np.float32
    shape = (desc.num_slices, desc.height, desc.width, desc.channels)
    return MedImage(
        pixels=np.broadcast_to(np.zeros((1, 1, 1, 1), dtype=dtype), shape),
        default_window=desc.default_window, modality=desc.modality,
    )  # fmt: skip


def tool_config_dict(config: ToolConfig) -> dict[str, int | float]:
    """A :class:`ToolConfig` as the JSON the server takes."""
    return dict(dataclasses.asdict(config))


def remote_registry(
    client: ToolServerClient, images: tuple[ImageRef, ...], profile: ModelProfile
) -> ToolRegistry:
    """The local registry's tools, each executed on the server for ``images``.

    Arguments are validated locally first (same messages), then sent; a server-side
    :class:`~medgym.errors.ToolError` comes back as the same ToolError.
    """

    def remote(name: str) -> Any:
        def fn(ctx: ToolContext, params: Any) -> ToolResult:
            r = client.call_tool(
                images, ctx.views, name, params.model_dump(mode="json", exclude_unset=True),
                profile=profile.name, max_pixels=profile.max_pixels,
                tool_config=tool_config_dict(ctx.config),
            )  # fmt: skip
            return ToolResult(
                text=r.text, view=r.view, ok=r.ok, penalty=r.penalty, notes=tuple(r.notes)
            )

        return fn

    tools = [Tool(t.name, t.description, t.params, remote(t.name)) for t in TOOLS.values()]
    return ToolRegistry(tools, ALIASES)


class RemoteEpisodeSession(EpisodeSession):
    """An :class:`EpisodeSession` whose tools and pixels come from a tool server.

    Args:
        sample: The VQA item; its image references must be ones the server can read.
        client: The server's client.
        config: Session config.
        profile: Model profile.
        **kwargs: Passed to :class:`EpisodeSession`.
    """

    def __init__(
        self, sample: Sample, client: ToolServerClient, *, config: SessionConfig,
        profile: ModelProfile, **kwargs: Any,
    ) -> None:  # fmt: skip
        images = [shape_only_image(client.register(ref)) for ref in sample.images]
        super().__init__(
            sample, config=config, profile=profile, images=images,
            tools=remote_registry(client, sample.images, profile), **kwargs,
        )  # fmt: skip
        self.client = client

    def pixels(self, view_index: int) -> np.ndarray:
        """Pixels of a view, rendered by the server (once, then cached; do not modify)."""
        arr = self._pixels.get(view_index)
        if arr is None:
            arr = self.client.render(self.sample.images, self.views[view_index], encoding="raw")
            arr.setflags(write=False)
            self._pixels[view_index] = arr
        return arr

    def fork(self, trajectory_id: str | None = None) -> RemoteEpisodeSession:
        """An independent copy that keeps using the server."""
        new = super().fork(trajectory_id)
        new.__class__ = RemoteEpisodeSession
        return new  # type: ignore[return-value]
