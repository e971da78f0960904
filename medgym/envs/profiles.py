"""Model profiles: what differs between model families, in one object per family.

A profile fixes the box convention the model speaks, the resize rule its processor applies (so
the env can emit views already at that size and boxes mean what the model saw), where tool
schemas go, which role tool results take and where generation stops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from medgym.core.bbox import BBox
from medgym.errors import ConfigError, did_you_mean

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "PROFILE_FILE",
    "ModelProfile",
    "get_profile",
    "load_checkpoint_profile",
    "read_checkpoint_record",
    "save_checkpoint_profile",
    "smart_resize",
]

#: Profile of a model that records none (Qwen2.5-VL, the models the papers train).
DEFAULT_PROFILE = "qwen2.5-vl"

#: File a checkpoint folder records its model profile in (written beside ``config.json``).
PROFILE_FILE = "medgym_profile.json"

BoxFormat = Literal["pixel", "norm1000", "norm1"]


def smart_resize(
    height: float, width: float, *, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen-VL's resize rule: sides multiples of ``factor``, area within the pixel budget.

    Returns:
        ``(height, width)`` after the rule, as the Qwen2-VL/2.5-VL/3-VL processors compute it.

    Raises:
        ConfigError: For a non-positive size or an aspect ratio above 200 (processors refuse it).
    """
    if height <= 0 or width <= 0:
        raise ConfigError(f"image size must be positive; got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ConfigError(f"aspect ratio must be <= 200; got {width}x{height}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


_HERMES_TOOLS = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{schemas}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


MAX_PIXELS = 8192 * 8192
"""Largest per-view pixel budget a profile accepts (a bigger one asks a zoom for gigabytes)."""


@dataclass(frozen=True, kw_only=True)
class ModelProfile:
    """What one model family expects.

    Attributes:
        name: Profile name (``qwen2.5-vl``...).
        box_format: How the model writes boxes: ``pixel`` (absolute pixels of the view as it
            received it), ``norm1000`` (0-1000, Qwen3-VL) or ``norm1`` (0-1).
        factor: Image sides are rounded to multiples of this (28 Qwen2/2.5-VL, 32 Qwen3-VL).
        min_pixels: Smallest image area after resizing.
        max_pixels: Pixel budget per image; views are rendered within it.
        tools_in_system_prompt: Render tool schemas into the system prompt (the Qwen2.5-VL chat
            template ignores ``tools=``) instead of passing them to the template.
        tool_result_role: Role of the message that carries tool results.
        wrap_tool_response: Wrap tool result text in ``<tool_response>`` tags.
        stop: Strings generation stops at (kept in the output).
        image_placeholder: Marker for one image in plain-text renderings.
    """

    name: str
    box_format: BoxFormat = "pixel"
    factor: int = 28
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 448 * 448
    tools_in_system_prompt: bool = True
    tool_result_role: Literal["tool", "user"] = "user"
    wrap_tool_response: bool = True
    stop: tuple[str, ...] = ("</tool_call>", "</answer>")
    image_placeholder: str = "<image>"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.box_format not in ("pixel", "norm1000", "norm1"):
            raise ConfigError(
                f"box_format must be 'pixel', 'norm1000' or 'norm1'; got {self.box_format!r}"
            )
        if self.factor < 1:
            raise ConfigError(f"factor must be >= 1; got {self.factor}")
        if self.max_pixels > MAX_PIXELS:
            raise ConfigError(
                f"max_pixels must be <= {MAX_PIXELS} (a 8192x8192 view); got {self.max_pixels}"
            )
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError(
                f"need 0 < min_pixels <= max_pixels; got {self.min_pixels}, {self.max_pixels}"
            )

    def with_options(self, **changes: Any) -> ModelProfile:
        """A copy with some fields changed (e.g. ``max_pixels``)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ sizes
    def view_size(self, width: float, height: float, *, upscale: bool) -> tuple[int, int]:
        """``(width, height)`` a region is rendered at: the family's resize rule.

        With ``upscale`` the region is scaled to fill the pixel budget (zoom); without, it is
        only shrunk when it exceeds the budget (crop, first view). Either way the result is a
        fixed point of :func:`smart_resize`, so the model's processor leaves it unchanged.
        """
        scale = math.sqrt(self.max_pixels / (width * height))
        if not upscale:
            scale = min(scale, 1.0)
        h, w = smart_resize(
            height * scale,
            width * scale,
            factor=self.factor,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )
        return (w, h)

    # ------------------------------------------------------------------ boxes
    def to_view_px(self, box: Sequence[float], out_size: tuple[int, int]) -> BBox:
        """Convert a box the model wrote (its convention) to pixels of the view it saw."""
        w, h = out_size
        x1, y1, x2, y2 = (float(v) for v in box)
        if self.box_format == "pixel":
            return (x1, y1, x2, y2)
        d = 1000.0 if self.box_format == "norm1000" else 1.0
        return (x1 * w / d, y1 * h / d, x2 * w / d, y2 * h / d)

    def from_view_px(self, box_px: BBox, out_size: tuple[int, int]) -> list[float]:
        """Express a box in view pixels the way this model writes it (for scripted policies)."""
        w, h = out_size
        if self.box_format == "pixel":
            return [round(v) for v in box_px]
        d = 1000.0 if self.box_format == "norm1000" else 1.0
        vals = [box_px[0] * d / w, box_px[1] * d / h, box_px[2] * d / w, box_px[3] * d / h]
        return [round(v) for v in vals] if d == 1000.0 else [round(v, 4) for v in vals]

    @property
    def box_hint(self) -> str:
        """One sentence telling the model which box convention to use."""
        if self.box_format == "pixel":
            return "Boxes are [x1, y1, x2, y2] in pixels of the image you are shown."
        if self.box_format == "norm1000":
            return "Boxes are [x1, y1, x2, y2] scaled to 0-1000 relative to the image shown."
        return "Boxes are [x1, y1, x2, y2] as fractions 0-1 of the image shown."

    # ------------------------------------------------------------------ prompts
    def tools_block(self, schemas: Sequence[dict[str, Any]]) -> str:
        """The Hermes-style tool block for the system prompt ('' without tools)."""
        if not schemas:
            return ""
        lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
        return _HERMES_TOOLS.format(schemas=lines)

    def wrap_result(self, text: str) -> str:
        """Tool result text as this family expects it."""
        return f"<tool_response>\n{text}\n</tool_response>" if self.wrap_tool_response else text


PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile(name="qwen2-vl", box_format="pixel", factor=28),
        ModelProfile(name="qwen2.5-vl", box_format="pixel", factor=28),
        ModelProfile(
            name="qwen3-vl",
            box_format="norm1000",
            factor=32,
            min_pixels=4 * 32 * 32,
            max_pixels=448 * 448,
            tools_in_system_prompt=False,
            tool_result_role="tool",
            wrap_tool_response=False,
        ),
        # medgym's tiny offline model (medgym.agents.tiny_vlm): a Qwen2.5-VL architecture with
        # 168 px views (36 image tokens each), no tool block in the system prompt, and boxes in
        # 0-1000 (Qwen3-VL's convention): the questions name regions in percent, so a box is
        # the percent digits with a 0 appended, which a model of a few million weights learns.
        ModelProfile(
            name="tiny-vlm",
            box_format="norm1000",
            factor=28,
            min_pixels=28 * 28,
            max_pixels=168 * 168,
            tools_in_system_prompt=False,
        ),
        ModelProfile(
            name="generic",
            box_format="norm1",
            factor=28,
            tools_in_system_prompt=True,
            tool_result_role="user",
        ),
    )
}


def get_profile(profile: str | ModelProfile, **overrides: Any) -> ModelProfile:
    """Look a profile up by name (or pass one through), applying ``overrides``."""
    if isinstance(profile, ModelProfile):
        base = profile
    else:
        if profile not in PROFILES:
            raise ConfigError(
                f"unknown model profile `{profile}`{did_you_mean(profile, PROFILES)}; "
                f"known: {', '.join(PROFILES)}"
            )
        base = PROFILES[profile]
    return base.with_options(**overrides) if overrides else base


def save_checkpoint_profile(path: str | Path, profile: str | ModelProfile) -> Path:
    """Record ``profile`` in the checkpoint folder ``path`` (``medgym_profile.json``).

    A checkpoint that knows its profile is evaluated and trained with the views, box convention
    and prompts it learned (see :func:`load_checkpoint_profile`).

    Returns:
        The path of the written file.
    """
    p = get_profile(profile)
    out = Path(path) / PROFILE_FILE
    out.write_text(json.dumps(asdict(p), indent=2, sort_keys=True), encoding="utf-8")
    return out


def read_checkpoint_record(path: str | Path, name: str) -> Any | None:
    """The JSON of the record ``name`` in the checkpoint folder ``path``; ``None`` if absent.

    Raises:
        ConfigError: The file exists but is not readable JSON.
    """
    file = Path(path) / name
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{file} is not readable JSON: {e}") from e


def load_checkpoint_profile(path: str | Path) -> ModelProfile | None:
    """The profile a checkpoint folder recorded, or ``None`` when it recorded none.

    Raises:
        ConfigError: If ``medgym_profile.json`` exists but is not a valid profile.
    """
    file = Path(path) / PROFILE_FILE
    data = read_checkpoint_record(path, PROFILE_FILE)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a JSON object; got {type(data).__name__}")
    known = {f.name for f in fields(ModelProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{file}: unknown profile fields {unknown}; known: {sorted(known)}")
    if "stop" in data:
        data["stop"] = tuple(data["stop"])
    try:
        return ModelProfile(**data)
    except TypeError as e:
        raise ConfigError(f"{file} is not a valid model profile: {e}") from e
