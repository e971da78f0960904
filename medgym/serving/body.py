"""JSON request bodies parsed by pydantic-core in one step, failing exactly as FastAPI would.

FastAPI validates a body model with ``json.loads`` and then ``validate_python``, through its
dependency machinery: ~30 us of server CPU per tool call under load, more than the tool's own
geometry. :func:`parse_body` hands the bytes to ``model_validate_json`` instead. On bad input it
rebuilds the errors FastAPI gives (same types, locations and messages, each location starting
with ``"body"``), so a client sees the same 422 either way; ``tests/serving/test_body.py``
compares the two over a table of bad bodies.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["parse_body"]

M = TypeVar("M", bound=BaseModel)


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test: ``application/json`` or ``application/*+json`` (strict: a type is needed)."""
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _in_body(errors: list[Any]) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", *e["loc"])} for e in errors]


def parse_body(model: type[M], body: bytes, content_type: str | None) -> M:
    """Validate a JSON request body as ``model``.

    Args:
        model: The request model.
        body: The raw body.
        content_type: The request's ``Content-Type`` header, if any.

    Raises:
        RequestValidationError: What FastAPI raises for the same body (answered 422).
        HTTPException: 400 for bytes that are not text (FastAPI's "error parsing the body").
    """
    if not body:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    is_json = _is_json(content_type)
    if is_json:
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass  # fail the way FastAPI does: its messages differ from JSON-mode validation's
    data: Any = body  # FastAPI validates the raw bytes of a body that is not JSON
    if is_json:
        try:
            data = json.loads(body)
        except json.JSONDecodeError as e:
            invalid = {
                "type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error",
                "input": {}, "ctx": {"error": e.msg},
            }  # fmt: skip
            raise RequestValidationError([invalid]) from e
        except ValueError as e:  # not UTF-8/16/32
            raise HTTPException(400, "There was an error parsing the body") from e
        except RecursionError as e:  # ~2,000-deep arrays: a client error, not a 500
            raise HTTPException(400, "JSON body nested too deeply") from e
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as e:
        raise RequestValidationError(_in_body(e.errors())) from e
