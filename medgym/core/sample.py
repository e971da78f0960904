"""A VQA sample: images, question, optional answer and optional evidence regions."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medgym.core.bbox import BBox
from medgym.core.images import ImageRef

__all__ = ["NO_IMAGE", "Evidence", "Sample", "text_only_sample"]


class Evidence(BaseModel):
    """A ground-truth region that holds the answer: a box in original pixels of one image."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_index: int = Field(default=0, ge=0, description="Which of the sample's images.")
    bbox_px: BBox = Field(description="(x1, y1, x2, y2) in original pixels.")

    @field_validator("bbox_px")
    @classmethod
    def _box_ok(cls, v: BBox) -> BBox:
        if not all(math.isfinite(c) for c in v):
            raise ValueError(f"evidence box must be finite numbers; got {v}")
        if v[2] <= v[0] or v[3] <= v[1]:
            raise ValueError(f"evidence box must have x1 < x2 and y1 < y2; got {v}")
        return v


class Sample(BaseModel):
    """One medical VQA item.

    ``answer`` is optional: label-free data has none, and the group rewards supply pseudo labels.
    For closed questions with ``options``, ``answer`` is the option *text*.

    Example:
        >>> s = Sample(id="q1", images=(ImageRef(uri="a.png"),), question="Is there a nodule?",
        ...            answer="yes", answer_type="closed", options=("yes", "no"))
        >>> Sample.model_validate_json(s.model_dump_json()) == s
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Unique id within the dataset.")
    images: tuple[ImageRef, ...] = Field(min_length=1, description="The images asked about.")
    question: str = Field(min_length=1, description="The question text.")
    answer: str | None = Field(default=None, description="Reference answer; None when unlabelled.")
    answer_type: Literal["closed", "open"] = Field(default="open", description="closed or open.")
    options: tuple[str, ...] = Field(
        default=(),
        max_length=26,
        description="Choices of a multiple-choice item (A-Z: at most 26).",
    )
    modality: str | None = Field(default=None, description="Imaging modality (CT, MRI, X-Ray...).")
    body_part: str | None = Field(default=None, description="Organ or body region.")
    question_type: str | None = Field(default=None, description="Dataset's question category.")
    evidence: tuple[Evidence, ...] = Field(default=(), description="Regions that hold the answer.")
    source: str | None = Field(default=None, description="Dataset name.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Anything else, JSON-able.")

    @model_validator(mode="after")
    def _evidence_in_range(self) -> Sample:
        for ev in self.evidence:
            if ev.image_index >= len(self.images):
                raise ValueError(
                    f"evidence refers to image {ev.image_index}, "
                    f"but the sample has {len(self.images)} image(s)"
                )
        return self

    @property
    def labelled(self) -> bool:
        """Whether the sample carries a reference answer."""
        return self.answer is not None

    def __hash__(self) -> int:
        return hash(self.id)


NO_IMAGE = ImageRef(uri="text://no-image")
"""The image of a sample built only to score texts (never loaded)."""


def text_only_sample(id: str, *, question: str = "?", **fields: Any) -> Sample:
    """A sample for scoring completion texts with no images behind them (rewards, verl).

    Example:
        >>> text_only_sample("g", answer="yes").images[0].uri
        'text://no-image'
    """
    return Sample(id=id, images=(NO_IMAGE,), question=question or "?", **fields)
