"""Flat OpenAI function-calling schemas derived from pydantic params models.

Pydantic's JSON schema is correct but noisy for tool prompts: ``title`` on every field,
``anyOf [..., {"type": "null"}]`` for optional fields, ``$ref``/``$defs`` for nested models and
enums, ``prefixItems`` for tuples. Consumers are stricter than JSON Schema: verl validates tools
with ``OpenAIFunctionPropertySchema`` (every property needs a single string ``type``; ``enum``
must be strings), and chat templates print the schema verbatim into the prompt. This module
flattens the pydantic schema into the shape ``transformers.utils.get_json_schema`` produces for a
plain function, and refuses (with :class:`~medgym.errors.ConfigError`) constructs it cannot
express flatly, such as a union of two concrete types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from medgym.errors import ConfigError

__all__ = ["openai_schema"]

# Keys a flat property keeps; everything else (title, default, examples...) is prompt noise.
_KEPT = (
    "type",
    "description",
    "enum",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "properties",
    "required",
)
_JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object")


def openai_schema(name: str, description: str, params: type[BaseModel]) -> dict[str, Any]:
    """Build the OpenAI tool schema of a function whose arguments are ``params``.

    Args:
        name: Function name the model calls.
        description: What the function does, for the model.
        params: Pydantic model of the arguments; its field descriptions become the property
            descriptions.

    Returns:
        ``{"type": "function", "function": {"name", "description", "parameters"}}`` where
        ``parameters`` is ``{"type": "object", "properties": {...}, "required": [...]}`` with
        every property carrying one JSON ``type`` and no ``$ref``, ``anyOf``, ``allOf`` or
        ``prefixItems``. An optional field (``X | None``) becomes ``X``'s type and is left out of
        ``required``.

    Raises:
        ConfigError: If a field's type cannot be expressed as one flat JSON type.

    Example:
        >>> from pydantic import BaseModel, Field
        >>> class P(BaseModel):
        ...     k: int = Field(default=1, description="How many.")
        >>> openai_schema("f", "Does f.", P)["function"]["parameters"]["properties"]
        {'k': {'type': 'integer', 'description': 'How many.'}}
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"tool name must be a non-empty string; got {name!r}")
    root = params.model_json_schema()
    defs = root.get("$defs", {})
    flat = _flatten(root, defs, where=f"{name}")
    if flat.get("type") != "object":
        raise ConfigError(f"params of `{name}` must be an object model; got {flat.get('type')!r}")
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": flat.get("properties", {}),
                "required": flat.get("required", []),
            },
        },
    }


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Inline ``$ref`` and single-branch ``allOf``; drop ``null`` branches of ``anyOf``/``oneOf``.

    Keys next to the reference or union (``description``, ``enum``) win over the target's.
    """
    out = dict(node)
    ref = out.pop("$ref", None)
    if ref is not None:
        key = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/$defs/") or key not in defs:
            raise ConfigError(f"{where}: cannot resolve schema reference {ref!r}")
        out = {**_resolve(defs[key], defs, where), **out}
    for combo in ("anyOf", "oneOf", "allOf"):
        branches = out.pop(combo, None)
        if branches is None:
            continue
        concrete = [b for b in branches if b.get("type") != "null"]
        if len(concrete) != 1:
            shown = [b.get("type", b.get("$ref", "?")) for b in concrete]
            raise ConfigError(
                f"{where}: `{combo}` over {shown} cannot be flattened to one JSON type; "
                "use a single type (optionally `| None`)"
            )
        out = {**_resolve(concrete[0], defs, where), **out}
    typ = out.get("type")
    if isinstance(typ, list):
        kinds = [t for t in typ if t != "null"]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: type {typ} cannot be flattened to one JSON type")
        out["type"] = kinds[0]
    return out


def _flatten(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One flat property (or object) schema with only the kept keys."""
    out = _resolve(node, defs, where)
    if "const" in out:
        out.setdefault("enum", [out.pop("const")])
    if "enum" in out and "type" not in out:
        kinds = {type(v) for v in out["enum"]}
        if kinds == {str}:
            out["type"] = "string"
    typ = out.get("type")
    if typ not in _JSON_TYPES:
        raise ConfigError(
            f"{where}: has no single JSON type (got {typ!r}); give the field a concrete "
            "annotation or a `WithJsonSchema` that names its type"
        )
    if typ == "array":
        out = _flatten_array(out, defs, where)
    elif typ == "object" and "properties" in out:
        out["properties"] = {
            key: _flatten(sub, defs, f"{where}.{key}") for key, sub in out["properties"].items()
        }
        out["required"] = list(out.get("required", []))
    elif typ == "object" and "additionalProperties" in out:
        raise ConfigError(f"{where}: mappings with typed values cannot be flattened")
    return {k: out[k] for k in _KEPT if k in out}


def _flatten_array(out: dict[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    prefix = out.pop("prefixItems", None)
    if prefix is not None:
        items = [_flatten(p, defs, f"{where}[]") for p in prefix]
        if any(i != items[0] for i in items):
            raise ConfigError(f"{where}: a tuple of mixed item types cannot be flattened")
        if "items" in out and out["items"] is not False:
            raise ConfigError(f"{where}: a tuple with extra items cannot be flattened")
        out["items"] = items[0]
        out.setdefault("minItems", len(prefix))
        out.setdefault("maxItems", len(prefix))
    elif "items" in out:
        out["items"] = _flatten(out["items"], defs, f"{where}[]")
    else:
        raise ConfigError(f"{where}: an array needs a typed item (list[float], not list)")
    return out
