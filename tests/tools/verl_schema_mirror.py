"""A field-by-field mirror of verl's tool-schema models, for tests that run without verl.

Mirrors ``OpenAIFunctionPropertySchema``, ``OpenAIFunctionParametersSchema``,
``OpenAIFunctionSchema`` and ``OpenAIFunctionToolSchema`` of ``verl/tools/schemas.py`` in
volcengine/verl (read at commits 2066bae30cb5 and 76f000fc433e; the four classes are the same in
both). What they imply for medgym's schemas:

* a property keeps only ``type`` (one string), ``description`` and ``enum`` (strings only);
* pydantic's default ``extra="ignore"`` silently drops everything else: ``items``,
  ``minItems``/``maxItems``, ``maximum``... So after ``model_dump()`` an array parameter such as
  ``bbox_2d`` reaches the chat template without its item type; its description must say
  ``[x1, y1, x2, y2]``.
"""

from __future__ import annotations

from pydantic import BaseModel


class OpenAIFunctionPropertySchema(BaseModel):
    type: str
    description: str | None = None
    enum: list[str] | None = None


class OpenAIFunctionParametersSchema(BaseModel):
    type: str
    properties: dict[str, OpenAIFunctionPropertySchema]
    required: list[str]


class OpenAIFunctionSchema(BaseModel):
    name: str
    description: str
    parameters: OpenAIFunctionParametersSchema
    strict: bool = False


class OpenAIFunctionToolSchema(BaseModel):
    type: str
    function: OpenAIFunctionSchema
