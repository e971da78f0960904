"""The FastAPI tool server (``create_app``), its settings, and sync/async clients.

``medgym.serving.client`` needs only httpx; the app needs the ``serve`` extra (fastapi, uvicorn,
pydantic-settings). Names are imported on first use so the client works without FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AsyncToolServerClient",
    "ServerSettings",
    "ToolServerClient",
    "ToolServerError",
    "create_app",
    "serve",
]

_WHERE = {
    "AsyncToolServerClient": "medgym.serving.client",
    "ToolServerClient": "medgym.serving.client",
    "ToolServerError": "medgym.serving.client",
    "ServerSettings": "medgym.serving.settings",
    "create_app": "medgym.serving.app",
    "serve": "medgym.serving.run",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'medgym.serving' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as e:
        from medgym.errors import DependencyNotInstalled

        raise DependencyNotInstalled.for_extra(e.name or "fastapi", "serve") from e
