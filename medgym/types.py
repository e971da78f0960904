"""Shared types of medgym: one import for the whole data model."""

from __future__ import annotations

from medgym.core.bbox import BBox
from medgym.core.images import ImageRef, MedImage, Window
from medgym.core.sample import Evidence, Sample
from medgym.core.trajectory import (
    Group,
    ToolCallRecord,
    Trajectory,
    Turn,
    read_groups,
    write_groups,
)
from medgym.core.view import ViewSpec, full_view, render

__all__ = [
    "BBox",
    "Evidence",
    "Group",
    "ImageRef",
    "MedImage",
    "Sample",
    "ToolCallRecord",
    "Trajectory",
    "Turn",
    "ViewSpec",
    "Window",
    "full_view",
    "read_groups",
    "render",
    "write_groups",
]
