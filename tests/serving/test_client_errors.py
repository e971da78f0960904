"""The client raises the server's medgym error again, subclasses included."""

from __future__ import annotations

import httpx
import pytest

from medgym.errors import ConfigError, DatasetError, InvalidBBoxError, ToolError
from medgym.serving.client import ToolServerError, _raise_for


@pytest.mark.parametrize(
    ("status", "error", "raised"),
    [
        (422, "ToolError", ToolError),
        (422, "InvalidBBoxError", InvalidBBoxError),
        (422, "ConfigError", ConfigError),
        (400, "DatasetError", DatasetError),
        (422, "ValidationError", ToolServerError),
        (401, "Unauthorized", ToolServerError),
    ],
    ids=["tool", "bbox-subclass", "config", "dataset", "request-shape", "token"],
)
def test_error_names_map_to_medgym_errors(status: int, error: str, raised: type) -> None:
    response = httpx.Response(status, json={"detail": "the message", "error": error})
    with pytest.raises(raised, match="the message") as info:
        _raise_for(response)
    if raised is ToolServerError:
        assert info.value.status_code == status


def test_a_bbox_error_is_a_tool_error_the_session_turns_into_a_record() -> None:
    response = httpx.Response(422, json={"detail": "box outside", "error": "InvalidBBoxError"})
    with pytest.raises(ToolError):
        _raise_for(response)
