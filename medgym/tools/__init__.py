"""Image tools: pure functions from (views so far, typed params) to a new view, and their registry.

``TOOLS`` holds every tool under its name, plus the aliases models were trained with:

* ``image_zoom_in_tool`` -> ``zoom_in``: DeepEyes' zoom tool (same ``bbox_2d`` and ``label``
  arguments), so DeepEyes-style checkpoints work unchanged.

Example:
    >>> from medgym.core.view import ViewSpec
    >>> from medgym.tools import TOOLS, ImageInfo, ToolContext
    >>> ctx = ToolContext(
    ...     views=(ViewSpec(bbox_px=(0, 0, 512, 512), out_size=(448, 448)),),
    ...     images=(ImageInfo(width=512, height=512),),
    ... )
    >>> TOOLS["image_zoom_in_tool"](ctx, {"bbox_2d": [0, 0, 224, 224]}).view.bbox_px
    (0.0, 0.0, 256.0, 256.0)
"""

from __future__ import annotations

from medgym.tools.base import (
    ImageInfo,
    Sizer,
    Tool,
    ToolConfig,
    ToolContext,
    ToolRegistry,
    ToolResult,
    fit_size,
)
from medgym.tools.measure import MeasureParams, measure, measure_line
from medgym.tools.orient import (
    FlipParams,
    RotateParams,
    compose,
    flip,
    flip_view,
    rotate,
    rotate_view,
)
from medgym.tools.overview import OverviewParams, overview, overview_view
from medgym.tools.plane import PLANES, PlaneParams, set_plane, set_plane_view
from medgym.tools.reground import RegroundParams, reground, reground_view
from medgym.tools.schema import openai_schema
from medgym.tools.scroll import ScrollParams, scroll, scroll_view
from medgym.tools.window import PRESETS, WindowParams, window, window_view
from medgym.tools.zoom import CropParams, ZoomInParams, crop, crop_region, zoom_in, zoom_in_region

__all__ = [
    "ALIASES",
    "ALL_TOOLS",
    "PLANES",
    "PRESETS",
    "TOOLS",
    "VOLUME_TOOLS",
    "ZOOM_TOOLS",
    "CropParams",
    "FlipParams",
    "ImageInfo",
    "MeasureParams",
    "OverviewParams",
    "PlaneParams",
    "RegroundParams",
    "RotateParams",
    "ScrollParams",
    "Sizer",
    "Tool",
    "ToolConfig",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "WindowParams",
    "ZoomInParams",
    "compose",
    "crop",
    "crop_region",
    "fit_size",
    "flip",
    "flip_view",
    "measure",
    "measure_line",
    "openai_schema",
    "overview",
    "overview_view",
    "reground",
    "reground_view",
    "rotate",
    "rotate_view",
    "scroll",
    "scroll_view",
    "set_plane",
    "set_plane_view",
    "window",
    "window_view",
    "zoom_in",
    "zoom_in_region",
]

#: Names models were trained with, mapped to medgym tools with the same arguments.
ALIASES: dict[str, str] = {"image_zoom_in_tool": "zoom_in"}

#: The region tools: what a zoom-only agent (MedVR, DeepEyes) gets.
ZOOM_TOOLS: tuple[str, ...] = ("zoom_in", "crop", "reground")

#: The 2D tools (``MedVQA-Tools-v0``), in registration order.
ALL_TOOLS: tuple[str, ...] = ("zoom_in", "crop", "reground", "window", "rotate", "flip")

#: The 2D tools and the volume tools.
VOLUME_TOOLS: tuple[str, ...] = (*ALL_TOOLS, "scroll", "set_plane", "overview", "measure")

#: The default registry: every tool and :data:`ALIASES`. Narrow it with ``TOOLS.subset(...)``.
TOOLS: ToolRegistry = ToolRegistry(
    [zoom_in, crop, reground, window, rotate, flip, scroll, set_plane, overview, measure],
    ALIASES,
)
