from __future__ import annotations

import enum
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from medgym.errors import ConfigError
from medgym.tools import PRESETS, TOOLS, VOLUME_TOOLS, openai_schema

FORBIDDEN = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "prefixItems", "title", "default"}
JSON_TYPES = {"string", "number", "integer", "boolean", "array", "object"}


def load_mirror() -> ModuleType:
    path = Path(__file__).with_name("verl_schema_mirror.py")
    spec = importlib.util.spec_from_file_location("verl_schema_mirror", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the string annotations through it
    spec.loader.exec_module(module)
    return module


def walk_properties(props: dict[str, Any]) -> None:
    for name, prop in props.items():
        assert not FORBIDDEN & prop.keys(), f"{name}: {FORBIDDEN & prop.keys()}"
        assert prop.get("type") in JSON_TYPES, f"{name} has no JSON type: {prop}"
        if prop["type"] == "array":
            walk_properties({f"{name}[]": prop["items"]})
        if prop["type"] == "object" and "properties" in prop:
            walk_properties(prop["properties"])


# Plain functions with the same arguments as the tools, for transformers.utils.get_json_schema.
Preset = Literal["lung", "mediastinum", "abdomen", "soft_tissue", "liver", "bone", "brain"]


def zoom_in(bbox_2d: list[float], image_index: int = 0, label: str | None = None) -> None:
    """Zoom in.

    Args:
        bbox_2d: Box.
        image_index: Image.
        label: Label.
    """


def crop(bbox_2d: list[float], image_index: int = 0) -> None:
    """Crop.

    Args:
        bbox_2d: Box.
        image_index: Image.
    """


def reground(image_index: int = 0, bbox_2d: list[float] | None = None) -> None:
    """Reground.

    Args:
        image_index: Image.
        bbox_2d: Box.
    """


def window(
    level: float | None = None,
    width: float | None = None,
    preset: Preset | None = None,
    image_index: int = 0,
) -> None:
    """Window.

    Args:
        level: Level.
        width: Width.
        preset: Preset.
        image_index: Image.
    """


def rotate(degrees: int, image_index: int = 0) -> None:
    """Rotate.

    Args:
        degrees: Angle.
        image_index: Image.
    """


def flip(axis: Literal["horizontal", "vertical"], image_index: int = 0) -> None:
    """Flip.

    Args:
        axis: Axis.
        image_index: Image.
    """


def scroll(slice: int | None = None, step: int | None = None, image_index: int = 0) -> None:
    """Scroll.

    Args:
        slice: Slice.
        step: Step.
        image_index: Image.
    """


def measure(line_2d: list[float], image_index: int = 0) -> None:
    """Measure.

    Args:
        line_2d: Segment.
        image_index: Image.
    """


def set_plane(
    plane: Literal["axial", "coronal", "sagittal"], slice: int | None = None, image_index: int = 0
) -> None:
    """Set plane.

    Args:
        plane: Plane.
        slice: Slice.
        image_index: Image.
    """


def overview(
    count: int = 9, image_index: int = 0, first: int | None = None, last: int | None = None
) -> None:
    """Overview.

    Args:
        count: Count.
        image_index: Image.
        first: First.
        last: Last.
    """


PLAIN: dict[str, Callable[..., None]] = {
    f.__name__: f
    for f in (zoom_in, crop, reground, window, rotate, flip, scroll, set_plane, overview, measure)
}


def test_plain_functions_cover_every_tool() -> None:
    assert set(PLAIN) == set(VOLUME_TOOLS) == set(TOOLS)
    assert list(Preset.__args__) == list(PRESETS)


@pytest.mark.parametrize("name", VOLUME_TOOLS)
def test_schema_is_flat_and_typed(name: str) -> None:
    schema = TOOLS[name].to_openai_schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == name and fn["description"] == TOOLS[name].description
    params = fn["parameters"]
    assert set(params) == {"type", "properties", "required"} and params["type"] == "object"
    walk_properties(params["properties"])
    assert all(p.get("description") for p in params["properties"].values())
    assert set(params["required"]) <= set(params["properties"])
    json.dumps(schema)  # plain JSON


def test_bbox_keeps_its_item_type_and_length() -> None:
    props = TOOLS["zoom_in"].to_openai_schema()["function"]["parameters"]["properties"]
    assert props["bbox_2d"] == {
        "type": "array",
        "description": props["bbox_2d"]["description"],
        "items": {"type": "number"},
        "minItems": 4,
        "maxItems": 4,
    }


@pytest.mark.parametrize("name", VOLUME_TOOLS)
def test_schema_matches_transformers_get_json_schema(name: str) -> None:
    tf_utils = pytest.importorskip("transformers.utils")
    theirs = tf_utils.get_json_schema(PLAIN[name])["function"]["parameters"]
    ours = TOOLS[name].to_openai_schema()["function"]["parameters"]
    assert list(ours["properties"]) == list(theirs["properties"])
    assert set(ours["required"]) == set(theirs.get("required", []))
    for key, t in theirs["properties"].items():
        o = ours["properties"][key]
        assert o["type"] == t["type"], key
        assert o.get("items") == t.get("items"), key
        assert o.get("enum") == t.get("enum"), key


@pytest.mark.parametrize("name", VOLUME_TOOLS)
def test_schema_validates_in_verl_mirror(name: str) -> None:
    mirror = load_mirror()
    schema = TOOLS[name].to_openai_schema()
    parsed = mirror.OpenAIFunctionToolSchema.model_validate(schema)
    assert parsed.function.name == name
    assert list(parsed.function.parameters.properties) == list(
        schema["function"]["parameters"]["properties"]
    )


def test_verl_drops_array_item_types() -> None:
    """Documents verl's behaviour: items/minItems vanish from what reaches the template."""
    mirror = load_mirror()
    dumped = mirror.OpenAIFunctionToolSchema.model_validate(
        TOOLS["zoom_in"].to_openai_schema()
    ).model_dump(exclude_none=True)
    bbox = dumped["function"]["parameters"]["properties"]["bbox_2d"]
    assert set(bbox) == {"type", "description"}
    assert "[x1, y1, x2, y2]" in bbox["description"]  # the description still carries the shape


@pytest.mark.parametrize("name", VOLUME_TOOLS)
def test_schema_validates_in_real_verl(name: str) -> None:
    verl_schemas = pytest.importorskip("verl.tools.schemas")
    parsed = verl_schemas.OpenAIFunctionToolSchema.model_validate(TOOLS[name].to_openai_schema())
    assert parsed.function.name == name


# ---------------------------------------------------------------- generic flattening
class Colour(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    depth: int = Field(description="How deep.")


class Rich(BaseModel):
    box: tuple[float, float, float, float] = Field(description="A box.")
    colour: Colour = Field(description="A colour.")
    maybe: int | None = Field(description="Required but nullable.")
    only: Literal["x"] = Field(default="x", description="A constant.")
    inner: Inner | None = Field(default=None, description="Nested.")
    names: list[str] = Field(default_factory=list, description="Names.")


def test_generic_model_is_flattened() -> None:
    params = openai_schema("rich", "Rich.", Rich)["function"]["parameters"]
    props = params["properties"]
    walk_properties(props)
    assert props["box"] == {
        "type": "array",
        "description": "A box.",
        "items": {"type": "number"},
        "minItems": 4,
        "maxItems": 4,
    }
    assert props["colour"] == {
        "type": "string",
        "description": "A colour.",
        "enum": ["red", "blue"],
    }
    assert props["maybe"] == {"type": "integer", "description": "Required but nullable."}
    assert props["only"] == {"type": "string", "description": "A constant.", "enum": ["x"]}
    assert props["inner"] == {
        "type": "object",
        "description": "Nested.",
        "properties": {"depth": {"type": "integer", "description": "How deep."}},
        "required": ["depth"],
    }
    assert props["names"]["items"] == {"type": "string"}
    assert params["required"] == ["box", "colour", "maybe"]


class Union2(BaseModel):
    x: int | str


class Untyped(BaseModel):
    x: Any


class Mapping_(BaseModel):
    x: dict[str, int]


class BareList(BaseModel):
    x: list  # type: ignore[type-arg]


class Mixed(BaseModel):
    x: tuple[int, str]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        pytest.param(Union2, "cannot be flattened to one JSON type", id="union"),
        pytest.param(Untyped, "no single JSON type", id="any"),
        pytest.param(Mapping_, "mappings", id="dict"),
        pytest.param(BareList, "no single JSON type", id="bare-list"),
        pytest.param(Mixed, "mixed item types", id="mixed-tuple"),
    ],
)
def test_unflattenable_models_raise_config_error(model: type[BaseModel], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        openai_schema("f", "F.", model)


def test_bad_name_is_config_error() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        openai_schema("", "F.", Inner)
