"""Where an episode's images, tool runs and pixels come from: in process, or a tool server.

The session owns the rules (parsing, box conventions, budgets, penalties, the trajectory); a
backend only decodes, runs tool functions and renders. :class:`LocalBackend` does that in
process; :class:`medgym.serving.remote.ServerBackend` does it on a medgym tool server. The gym
env's ``tool_server=`` option, the verl agent loop's ``tool_server_url`` and verl's
``backend: remote`` tools all pass a server backend to the same session, so a remote episode
is the local one with the work moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from medgym.core.images import MedImage
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec, render
from medgym.tools.base import ToolRegistry

__all__ = ["LOCAL", "LocalBackend", "ToolBackend"]


class ToolBackend(Protocol):
    """Decodes a sample's images, runs tool functions and renders views for a session.

    Attributes:
        blocking: Whether its calls wait on I/O (a server): async drivers then apply turns on a
            worker thread. In-process tools are microseconds of geometry and stay inline.
    """

    blocking: bool

    def load_images(self, sample: Sample) -> list[MedImage]:
        """The sample's images (or stand-ins with their shape, for a backend that renders)."""

    def bind(self, sample: Sample, tools: ToolRegistry) -> ToolRegistry:
        """The registry whose tool functions this backend runs for ``sample``."""

    def render(self, sample: Sample, images: Sequence[MedImage], view: ViewSpec) -> np.ndarray:
        """The pixels of ``view`` (HxWx3 uint8)."""


class LocalBackend:
    """Everything in process: the image cache, the tool functions as given, :func:`render`."""

    blocking = False

    def load_images(self, sample: Sample) -> list[MedImage]:
        """Decode through the process-wide image cache."""
        from medgym.data.cache import load_image

        return [load_image(ref) for ref in sample.images]

    def bind(self, sample: Sample, tools: ToolRegistry) -> ToolRegistry:
        """The tools unchanged."""
        return tools

    def render(self, sample: Sample, images: Sequence[MedImage], view: ViewSpec) -> np.ndarray:
        """Render ``view`` from the decoded image."""
        return render(images[view.image_index], view)

    def __repr__(self) -> str:
        return "LocalBackend()"


LOCAL = LocalBackend()
"""The shared in-process backend (stateless)."""
