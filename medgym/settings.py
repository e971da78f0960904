"""medgym's settings from the environment (``MEDGYM_*``), read once, on first use.

Nothing is parsed at import time: the first call to :func:`get_settings` reads the environment
and validates it (a bad value is a :class:`~medgym.errors.ConfigError` naming the variable);
later calls return the same object. The tool server's
:class:`~medgym.serving.settings.ServerSettings` extends :class:`MedgymSettings`.

Example:
    >>> from medgym.settings import get_settings
    >>> get_settings().image_cache_size >= 0
    True
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from medgym.errors import ConfigError

__all__ = ["MAX_PIXELS", "MedgymSettings", "get_settings", "reload_settings"]

MAX_PIXELS = 2**28
"""Default limit on decoded pixels per image (about 268 M); ``MEDGYM_MAX_PIXELS`` overrides it."""


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "medgym"


class MedgymSettings(BaseSettings):
    """Settings every medgym process reads; each field is ``MEDGYM_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MEDGYM_", extra="ignore", frozen=True)

    data_dir: Path | None = Field(
        default=None, description="Root of file-backed datasets when a loader gets no root."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Folder of built artefacts (the tiny model's warm start).",
    )
    store_dir: Path | None = Field(
        default=None, description="Folder of the content-addressed image store (shared by workers)."
    )
    max_pixels: int = Field(
        default=MAX_PIXELS, ge=1, description="Largest decoded image accepted (pixels)."
    )
    max_image_bytes: int = Field(
        default=1024**3, ge=1, description="Largest decoded image accepted (bytes)."
    )
    image_cache_size: int = Field(
        default=64, ge=1, le=1_000_000, description="Decoded images kept per process (LRU)."
    )
    image_cache_bytes: int = Field(
        default=2 * 1024**3, ge=0, description="Decoded image bytes kept per process (LRU)."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token: the server requires it; clients (tool_server=) send it.",
    )


@functools.cache
def get_settings() -> MedgymSettings:
    """The process's settings (read from the environment on the first call).

    Raises:
        ConfigError: A ``MEDGYM_*`` variable has a bad value (named, with what was expected).
    """
    try:
        return MedgymSettings()
    except ValidationError as e:
        err = e.errors()[0]
        name = "MEDGYM_" + str(err["loc"][0]).upper() if err.get("loc") else "a MEDGYM_ variable"
        raise ConfigError(f"{name}: {err['msg']}; got {err.get('input')!r}") from e


def reload_settings() -> MedgymSettings:
    """Read the environment again (after changing ``MEDGYM_*`` in a test or a launcher)."""
    get_settings.cache_clear()
    return get_settings()
