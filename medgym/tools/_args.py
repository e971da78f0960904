"""Argument types shared by the tools' params models.

Pydantic's lax mode turns ``true`` into ``1`` and lets ``NaN`` through; a model that writes those
should hear so. Boxes are taken raw and checked by :func:`medgym.core.bbox.validate_bbox`, so the
model reads the same box messages from every tool rather than pydantic's per-item errors.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

__all__ = ["BOX_SCHEMA", "BoxArg", "Index", "Number"]


def _reject_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


BOX_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "number"},
    "minItems": 4,
    "maxItems": 4,
}

BoxArg = Annotated[Any, WithJsonSchema(BOX_SCHEMA)]
"""A box ``[x1, y1, x2, y2]``: any JSON value on input, validated by the tool."""

Index = Annotated[int, BeforeValidator(_reject_bool)]
"""An integer that refuses booleans."""

Number = Annotated[float, BeforeValidator(_reject_bool), Field(allow_inf_nan=False)]
"""A finite number that refuses booleans."""
