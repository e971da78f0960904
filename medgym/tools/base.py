"""The tool contract: pure functions from (views so far, typed params) to a :class:`ToolResult`.

A tool never holds state: the views live in the episode session and arrive in a
:class:`ToolContext`. A tool returns a new :class:`~medgym.core.view.ViewSpec` (pixels come from
:func:`~medgym.core.view.render`), or raises :class:`~medgym.errors.ToolError` with a message the
model can act on; the session turns that into an error observation and a penalty.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from medgym.core.images import MedImage, Reformat, Window, plane_shape, plane_spacing
from medgym.core.view import ViewSpec
from medgym.errors import ConfigError, ToolError, did_you_mean

__all__ = [
    "ImageInfo",
    "Sizer",
    "Tool",
    "ToolConfig",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "fit_size",
]

P = TypeVar("P", bound=BaseModel)


class Sizer(Protocol):
    """Chooses the rendered size of a region: the model profile's resize rule."""

    def __call__(self, width: float, height: float, *, upscale: bool) -> tuple[int, int]:
        """Return ``(width, height)`` in view pixels for a region of ``width x height``."""


def fit_size(
    width: float, height: float, *, upscale: bool, max_side: int = 448, factor: int = 28
) -> tuple[int, int]:
    """Fit a region into ``max_side`` keeping its aspect, sides rounded to ``factor``.

    Without ``upscale`` a region smaller than ``max_side`` keeps (about) its native size.
    """
    scale = max_side / max(width, height)
    if not upscale:
        scale = min(scale, 1.0)
    w = max(factor, round(width * scale / factor) * factor)
    h = max(factor, round(height * scale / factor) * factor)
    return (int(w), int(h))


@dataclass(frozen=True)
class ImageInfo:
    """What a tool may know of a sample image without its pixels."""

    width: int
    height: int
    num_slices: int = 1
    is_color: bool = False
    modality: str | None = None
    default_window: Window | None = None
    spacing_mm: tuple[float, float] | None = None
    """``(row, column)`` pixel spacing in millimetres, when the file says."""
    slice_spacing_mm: float | None = None
    """Distance between slices in millimetres, when known."""
    acquired_plane: str | None = None
    """Plane of the stored slices (``axial``, ``coronal``, ``sagittal``, ``oblique``), if known."""

    @classmethod
    def of(cls, image: MedImage) -> ImageInfo:
        """Describe a decoded image."""
        plane = image.meta.get("plane")
        return cls(
            width=image.width,
            height=image.height,
            num_slices=image.num_slices,
            is_color=image.is_color,
            modality=image.modality,
            default_window=image.default_window,
            spacing_mm=image.spacing_mm,
            slice_spacing_mm=image.slice_spacing_mm,
            acquired_plane=plane if isinstance(plane, str) else None,
        )

    def plane_shape(self, reformat: Reformat | None) -> tuple[int, int, int]:
        """``(width, height, depth)`` of its planes (:func:`medgym.core.images.plane_shape`)."""
        return plane_shape(self.width, self.height, self.num_slices, reformat)

    def plane_spacing(self, reformat: Reformat | None) -> tuple[float, float] | None:
        """``(row, column)`` mm of a plane's pixels, if known."""
        return plane_spacing(self.spacing_mm, self.slice_spacing_mm, reformat)


@dataclass(frozen=True, kw_only=True)
class ToolConfig:
    """Knobs shared by the image tools.

    Attributes:
        min_box_side_px: Boxes smaller than this (original pixels) are enlarged about their
            centre; 28 px is one Qwen2.5-VL vision patch, smaller crops break processors.
        max_aspect: Longest/shortest side above which a box is rejected.
        min_visible_fraction: A box with less than this share of its area inside the image is
            rejected rather than clamped.
        max_views: Most views an episode may hold; tools refuse to add past it.
        clamp_penalty: Penalty charged when a box reaching outside the view is clamped to it.
    """

    min_box_side_px: float = 32.0
    max_aspect: float = 100.0
    min_visible_fraction: float = 0.0
    max_views: int = 64
    clamp_penalty: float = 0.05

    def __post_init__(self) -> None:
        if self.min_box_side_px < 1:
            raise ConfigError(f"min_box_side_px must be >= 1; got {self.min_box_side_px}")
        if self.max_aspect < 1:
            raise ConfigError(f"max_aspect must be >= 1; got {self.max_aspect}")
        if not 0.0 <= self.min_visible_fraction <= 1.0:
            raise ConfigError(
                f"min_visible_fraction must be in [0, 1]; got {self.min_visible_fraction}"
            )
        if not 0.0 <= self.clamp_penalty < float("inf"):
            raise ConfigError(f"clamp_penalty must be finite and >= 0; got {self.clamp_penalty}")


def _default_sizer(width: float, height: float, *, upscale: bool) -> tuple[int, int]:
    return fit_size(width, height, upscale=upscale)


@dataclass(frozen=True)
class ToolContext:
    """Everything a tool may read: the views so far and facts about the sample's images.

    Attributes:
        views: Views shown so far; ``views[i]`` is what ``image_index=i`` refers to. The first
            views are the sample's images as first shown.
        images: One :class:`ImageInfo` per sample image (indexed by ``ViewSpec.image_index``).
        sizer: The model profile's resize rule for new views.
        config: Shared tool knobs.
    """

    views: tuple[ViewSpec, ...]
    images: tuple[ImageInfo, ...]
    sizer: Sizer = _default_sizer
    config: ToolConfig = field(default_factory=ToolConfig)

    def view(self, index: int) -> ViewSpec:
        """The view at ``index``, or a :class:`ToolError` a model can act on."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise ToolError(f"image_index must be an integer; got {index!r}")
        if not 0 <= index < len(self.views):
            last = len(self.views) - 1
            raise ToolError(
                f"image_index {index} does not exist; images shown so far are 0..{last} "
                "(0 is the original image)"
            )
        return self.views[index]


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced.

    Attributes:
        text: Message shown to the model with the result.
        view: The new view, when the tool makes one.
        ok: Whether the call did what was asked.
        penalty: Penalty to charge (>= 0), e.g. for a box that had to be clamped.
        notes: Machine-readable remarks (``"clamped"``, ``"enlarged"``).
    """

    text: str
    view: ViewSpec | None = None
    ok: bool = True
    penalty: float = 0.0
    notes: tuple[str, ...] = ()


def _describe_validation(name: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "arguments"
        got = e.get("input")
        shown = repr(got)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if e["type"] == "missing":
            parts.append(f"missing argument `{loc}`")
        elif e["type"] == "extra_forbidden":
            parts.append(f"unknown argument `{loc}`")
        else:
            parts.append(f"argument `{loc}`: {e['msg'].lower()}, got {shown}")
    return f"invalid arguments for `{name}`: " + "; ".join(parts)


@dataclass(frozen=True)
class Tool(Generic[P]):
    """A named, typed, pure tool.

    Attributes:
        name: Function name the model calls (a verb: ``zoom_in``).
        description: One or two sentences for the model.
        params: Pydantic model of the arguments; the OpenAI schema is derived from it.
        fn: ``fn(ctx, params) -> ToolResult``; raises :class:`ToolError` on bad input.
    """

    name: str
    description: str
    params: type[P]
    fn: Callable[[ToolContext, P], ToolResult]

    def parse(self, arguments: Mapping[str, Any] | None) -> P:
        """Validate raw arguments into the params model, or raise a readable ToolError."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise ToolError(
                f"arguments for `{self.name}` must be a JSON object; got {type(arguments).__name__}"
            )
        try:
            return self.params.model_validate(dict(arguments))
        except ValidationError as e:
            raise ToolError(_describe_validation(self.name, e)) from e

    def __call__(self, ctx: ToolContext, arguments: Mapping[str, Any] | None) -> ToolResult:
        """Validate ``arguments`` and run the tool."""
        return self.fn(ctx, self.parse(arguments))

    def to_openai_schema(self) -> dict[str, Any]:
        """The flat OpenAI function-calling schema (see :mod:`medgym.tools.schema`).

        Derived once per tool (every episode asks for it) and returned as a fresh copy.
        """
        return copy.deepcopy(_cached_schema(self.name, self.description, self.params))


@functools.cache
def _cached_schema(name: str, description: str, params: type[BaseModel]) -> dict[str, Any]:
    from medgym.tools.schema import openai_schema

    return openai_schema(name, description, params)


class ToolRegistry(Mapping[str, Tool[Any]]):
    """Tools by name, with aliases for the names models were trained on.

    Example:
        >>> from medgym.tools import TOOLS
        >>> TOOLS.get("zoom_in").name
        'zoom_in'
    """

    def __init__(
        self, tools: Iterable[Tool[Any]] = (), aliases: Mapping[str, str] | None = None
    ) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        self._aliases: dict[str, str] = {}
        for t in tools:
            self.register(t)
        for alias, target in (aliases or {}).items():
            self.alias(alias, target)

    def register(self, tool: Tool[Any]) -> Tool[Any]:
        """Add ``tool``; a name can be registered once."""
        if tool.name in self._tools:
            raise ConfigError(f"tool `{tool.name}` is already registered")
        self._tools[tool.name] = tool
        return tool

    def alias(self, alias: str, target: str) -> None:
        """Let ``alias`` resolve to the tool named ``target``."""
        if target not in self._tools:
            raise ConfigError(f"cannot alias `{alias}` to unknown tool `{target}`")
        self._aliases[alias] = target

    def get(self, name: str, default: Any = None) -> Tool[Any]:  # type: ignore[override]
        """The tool called ``name`` (or an alias); ToolError with a suggestion when unknown."""
        key = self._aliases.get(name, name)
        tool = self._tools.get(key)
        if tool is None:
            if default is not None:
                return default
            known = list(self._tools) + list(self._aliases)
            raise ToolError(
                f"unknown tool `{name}`{did_you_mean(name, known)} "
                f"available tools: {', '.join(self._tools)}"
            )
        return tool

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A registry with only ``names`` (and the aliases that point at them).

        Raises:
            ConfigError: For a name that is not registered (a configuration error, unlike a
                model calling an unknown tool, which :meth:`get` reports as a ToolError).
        """
        keep = []
        for n in names:
            try:
                keep.append(self.get(n))
            except ToolError as e:
                raise ConfigError(str(e)) from e
        kept = {t.name for t in keep}
        return ToolRegistry(keep, {a: t for a, t in self._aliases.items() if t in kept})

    def map(self, make: Callable[[Tool[Any]], Tool[Any]]) -> ToolRegistry:
        """A registry of ``make(tool)`` for every tool, with the same aliases (remote backends)."""
        return ToolRegistry([make(t) for t in self._tools.values()], dict(self._aliases))

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI schemas of every tool, in registration order."""
        return [t.to_openai_schema() for t in self._tools.values()]

    def __getitem__(self, name: str) -> Tool[Any]:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._aliases.get(name, name) in self._tools
