"""``window``: re-display a view with another intensity window (level/width or a CT preset).

Windowing works on the original high-bit-depth pixels (Hounsfield units for CT), not on the
8-bit view the model saw, so a lung window on a CT really shows the lung parenchyma. The region,
orientation and size of the target view are kept.

Choices (see ``docs/tools.md``):

* Colour (RGB) images are refused: a window is a grayscale display mapping.
* Presets are CT windows in HU. They are refused on images stored as 8-bit display values
  (``ImageInfo.default_window is None``, e.g. the PNG slices of VQA-RAD and SLAKE, whose HU are
  lost) and on images whose modality is known and not CT. ``level``/``width`` work on any
  grayscale image, in its native units (0-255 for 8-bit images: a contrast stretch).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from medgym.core.images import Window
from medgym.errors import ToolError, did_you_mean
from medgym.tools._args import Index, Number
from medgym.tools._geometry import check_room, derive_view, fmt_num, image_info, made_view
from medgym.tools.base import ImageInfo, Tool, ToolContext, ToolResult

__all__ = ["PRESETS", "WindowParams", "window", "window_view"]

#: CT window presets in Hounsfield units, from Radiopaedia, "Windowing (CT)"
#: (https://radiopaedia.org/articles/windowing-ct); values vary a little between institutions.
PRESETS: Mapping[str, Window] = MappingProxyType(
    {
        "lung": Window(level=-600, width=1500),
        "mediastinum": Window(level=50, width=350),
        "abdomen": Window(level=50, width=400),
        "soft_tissue": Window(level=50, width=400),
        "liver": Window(level=30, width=150),
        "bone": Window(level=400, width=1800),
        "brain": Window(level=40, width=80),
    }
)


class WindowParams(BaseModel):
    """Arguments of :func:`window_view`: a preset, or a level and a width."""

    model_config = ConfigDict(extra="forbid")

    level: Number | None = Field(
        default=None,
        ge=-1e12,
        le=1e12,
        description="Window centre in the image's native units (Hounsfield units for CT).",
    )
    width: Number | None = Field(
        default=None, gt=0, le=1e12, description="Window width in the same units; must be > 0."
    )
    preset: str | None = Field(
        default=None,
        max_length=64,
        description="A CT window preset instead of level and width.",
        json_schema_extra={"enum": list(PRESETS)},
    )
    image_index: Index = Field(
        default=0, description="Which image shown so far to re-window: 0 is the original image."
    )


def _is_ct(info: ImageInfo) -> bool:
    if info.modality is None:
        return True  # unknown: trust the caller; the image holds native (non-8-bit) units
    m = info.modality.strip().upper()
    return m.startswith("CT") or "COMPUTED TOMOGRAPHY" in m


def _pick(params: WindowParams, info: ImageInfo, index: int) -> tuple[Window, str]:
    """The window asked for and how to describe it, or a ToolError a model can act on."""
    level, width, preset = params.level, params.width, params.preset
    names = ", ".join(PRESETS)
    if preset is not None:
        if level is not None or width is not None:
            raise ToolError("give either `preset` or both `level` and `width`, not both")
        key = preset.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in PRESETS:
            raise ToolError(
                f"unknown window preset `{preset}`{did_you_mean(key, PRESETS)} (presets: {names})"
            )
        if info.default_window is None:
            raise ToolError(
                f"image {index} holds 8-bit display values, not Hounsfield units, so CT presets "
                "do not apply; give `level` and `width` in 0-255 display units instead"
            )
        if not _is_ct(info):
            raise ToolError(
                f"presets are CT windows in Hounsfield units, but image {index} is "
                f"{info.modality}; give `level` and `width` in the image's own units"
            )
        win = PRESETS[key]
        return win, f"the {key} preset (level {fmt_num(win.level)}, width {fmt_num(win.width)} HU)"
    if level is None and width is None:
        raise ToolError(
            f"window needs `preset` (one of {names}) or both `level` and `width` in the image's "
            "native units (Hounsfield units for CT)"
        )
    if level is None or width is None:
        given = f"level={fmt_num(level)}" if level is not None else f"width={fmt_num(width or 0)}"
        raise ToolError(f"`level` and `width` go together; got only {given}")
    if width < 1e-9:
        raise ToolError(f"width {fmt_num(width)} is too small; give a width of at least 1e-9")
    return Window(level=level, width=width), f"level {fmt_num(level)}, width {fmt_num(width)}"


def window_view(ctx: ToolContext, params: WindowParams) -> ToolResult:
    """Re-display view ``image_index`` with a new window; region, orientation and size kept.

    Args:
        ctx: Views so far, image facts, sizer and config.
        params: Exactly one of ``preset`` or (``level`` and ``width``), and the target view.

    Returns:
        A result with the new view.

    Raises:
        ToolError: If the arguments do not name exactly one window, the preset is unknown or
            does not apply to the image, the image is colour, ``image_index`` names no view, or
            the episode holds too many views.
    """
    check_room(ctx)
    index = params.image_index
    target = ctx.view(index)
    info = image_info(ctx, target)
    if info.is_color:
        raise ToolError(
            f"image {index} is a colour (RGB) image; window applies only to grayscale scans "
            "(CT, MR, X-ray)"
        )
    win, how = _pick(params, info, index)
    view = derive_view(target, index, tool="window", window=win)
    return made_view(ctx, f"Windowed image {index} with {how}", view)


window: Tool[WindowParams] = Tool(
    name="window",
    description=(
        "Re-display an image shown so far with another intensity window (CT preset, or level "
        "and width in the scan's native units), to bring out tissues of a given density."
    ),
    params=WindowParams,
    fn=window_view,
)
