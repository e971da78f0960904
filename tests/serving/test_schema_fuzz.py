"""schemathesis against the app's OpenAPI schema: no 5xx, responses match the schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from medgym.serving.app import create_app
from medgym.serving.settings import ServerSettings

_TMP = Path(tempfile.mkdtemp(prefix="medgym-fuzz-"))
(_TMP / "data").mkdir()
_APP = create_app(ServerSettings(data_root=_TMP / "data", max_body_bytes=256 * 1024))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_500s_and_matches_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        checks=[
            schemathesis.checks.not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
        ]
    )
