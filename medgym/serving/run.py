"""Run the tool server with uvicorn: one process, or N workers sharing the on-disk store."""

from __future__ import annotations

import logging
import os
from typing import Any

from medgym.serving.settings import ServerSettings

__all__ = ["serve", "settings_to_env", "uvicorn_options"]

logger = logging.getLogger(__name__)


def settings_to_env(settings: ServerSettings) -> dict[str, str]:
    """The ``MEDGYM_*`` variables that recreate ``settings`` in a worker process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name == "token":
            value = settings.token.get_secret_value() if settings.token else None
        if name == "cors_origins":
            import json

            value = json.dumps(value)
        env[f"MEDGYM_{name.upper()}"] = str(value)
    return env


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """The ``uvicorn.run`` keyword arguments :func:`serve` uses, ``workers`` included.

    ``benchmarks/bench_server.py`` starts its bare ping app with the same options, so the two
    are compared under one HTTP stack (httptools with medgym's head bound, and uvloop, when
    installed).
    """
    from medgym.serving.protocol import bounded_http_protocol, set_head_limits

    set_head_limits(settings.max_header_bytes, settings.refusal_delay)
    protocol = bounded_http_protocol()
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "workers": settings.workers,
        # httptools with a bound on request heads (431), else h11 with the same bound
        "http": protocol if protocol is not None else "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_seconds,
    }


def serve(settings: ServerSettings | None = None) -> None:
    """Serve until interrupted. With ``workers > 1`` each worker builds the app from the env."""
    import uvicorn

    settings = settings or ServerSettings()
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
        logger.warning("serving on %s without a token (MEDGYM_TOKEN)", settings.host)
    common = uvicorn_options(settings)
    del common["workers"]
    if settings.workers == 1:
        from medgym.serving.app import create_app

        uvicorn.run(create_app(settings), **common)
        return
    os.environ.update(settings_to_env(settings))
    uvicorn.run("medgym.serving.app:create_app", factory=True, workers=settings.workers, **common)
