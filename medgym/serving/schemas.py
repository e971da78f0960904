"""Request and response bodies of the tool server's ``/v1`` API (shared with the client)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medgym.core.images import ImageRef, Window
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec
from medgym.envs.profiles import DEFAULT_PROFILE

__all__ = [
    "EncodedImage",
    "ErrorBody",
    "Health",
    "ImageDescription",
    "ImageEncoding",
    "RegisterRequest",
    "RenderRequest",
    "ToolCallRequest",
    "ToolCallResponse",
    "TurnRequest",
    "TurnResponse",
    "TurnView",
]

#: ``none`` returns no pixels; the others are :data:`medgym.serving.encoding.ENCODINGS`.
ImageEncoding = Literal["none", "raw", "npy", "png", "webp"]

_MAX_TEXT = 16_384
MAX_REQUEST_IMAGES = 16
"""Most images one request may carry (tool calls, renders and inline turn samples alike)."""
_STRICT = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a message a person (or a model) can act on."""

    detail: str = Field(description="What was expected and what arrived.")
    error: str = Field(description="Error class: ToolError, DatasetError, ConfigError...")


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    version: str
    detail: str = ""


class ImageDescription(BaseModel):
    """A stored or registered image: its reference and what a tool may know of it."""

    ref: ImageRef
    width: int
    height: int
    num_slices: int
    channels: Literal[1, 3]
    modality: str | None = None
    default_window: Window | None = None
    spacing_mm: tuple[float, float] | None = None
    slice_spacing_mm: float | None = Field(
        default=None, gt=0, description="Distance between slices in mm (volumes), if known."
    )
    plane: str | None = Field(
        default=None, max_length=16, description="Plane of the stored slices, if known."
    )


class RegisterRequest(BaseModel):
    """Register an image the server can already reach (a file under its data root, a URI)."""

    model_config = _STRICT

    ref: ImageRef = Field(
        description="Path relative to the data root, or a store/synthetic/pkg URI."
    )


class EncodedImage(BaseModel):
    """A rendered view on the wire: base64 of :func:`~medgym.serving.encoding.encode_pixels`."""

    encoding: Literal["raw", "npy", "png", "webp"]
    shape: tuple[int, int, int] = Field(
        description="(height, width, channels) as sent: 1 for a grayscale view, 3 for colour. "
        "Decoding gives (height, width, 3) RGB either way."
    )
    data: str = Field(description="Base64 of the encoded bytes.")


class _ProfileFields(BaseModel):
    model_config = _STRICT

    profile: str = Field(default=DEFAULT_PROFILE, max_length=64, description="Model profile name.")
    max_pixels: int | None = Field(
        default=None, ge=784, le=16_777_216, description="Pixel budget per view (profile override)."
    )


class ToolCallRequest(_ProfileFields):
    """One tool call against a view history; the server keeps nothing between calls."""

    images: list[ImageRef] = Field(
        min_length=1, max_length=MAX_REQUEST_IMAGES, description="The sample's images."
    )
    views: list[ViewSpec] = Field(min_length=1, max_length=256, description="Views so far.")
    name: str = Field(min_length=1, max_length=64, description="Tool name (or alias).")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Tool arguments.")
    tool_config: dict[str, int | float] = Field(
        default_factory=dict, description="ToolConfig overrides (min_box_side_px, ...)."
    )
    encoding: ImageEncoding = Field(default="none", description="Return the new view's pixels.")


class ToolCallResponse(BaseModel):
    """What the tool produced (a tool error is a 422 instead)."""

    name: str
    ok: bool
    text: str
    view: ViewSpec | None = None
    penalty: float = 0.0
    notes: list[str] = Field(default_factory=list)
    image: EncodedImage | None = None


class RenderRequest(BaseModel):
    """Render one view of one of the images."""

    model_config = _STRICT

    images: list[ImageRef] = Field(min_length=1, max_length=MAX_REQUEST_IMAGES)
    view: ViewSpec
    encoding: Literal["raw", "npy", "png", "webp"] = "png"


class TurnRequest(_ProfileFields):
    """Apply a model turn as the episode session does, replaying the earlier turns.

    Give the sample inline, or name a served dataset with ``dataset``/``split``/``sample_id``.
    """

    sample: Sample | None = None
    dataset: str | None = Field(default=None, max_length=64)
    split: str | None = Field(default="test", max_length=32)
    sample_id: str | None = Field(default=None, max_length=256)
    config: dict[str, Any] = Field(
        default_factory=dict, description="SessionConfig fields (tools, max_turns, penalties...)."
    )
    history: list[Annotated[str, Field(max_length=_MAX_TEXT)]] = Field(
        default_factory=list, max_length=64, description="Earlier turns of the episode, in order."
    )
    text: str = Field(max_length=_MAX_TEXT, description="The model's new turn.")
    encoding: ImageEncoding = "none"

    @field_validator("sample")
    @classmethod
    def _bounded_images(cls, sample: Sample | None) -> Sample | None:
        if sample is not None and len(sample.images) > MAX_REQUEST_IMAGES:
            raise ValueError(
                f"an inline sample may hold at most {MAX_REQUEST_IMAGES} images; "
                f"got {len(sample.images)}"
            )
        return sample


class TurnView(BaseModel):
    """A view the turn showed."""

    index: int
    view: ViewSpec
    image: EncodedImage | None = None


class TurnResponse(BaseModel):
    """The session's :class:`~medgym.envs.session.StepResult`, on the wire."""

    observation: str
    new_views: list[TurnView]
    reward: float
    terminated: bool
    truncated: bool
    answer: str | None = None
    errors: list[str] = Field(default_factory=list)
    penalty: float = 0.0
    metrics: dict[str, float] = Field(default_factory=dict)
    reward_parts: dict[str, float] = Field(default_factory=dict)
