"""Server settings from the environment (``MEDGYM_*``), with safe defaults.

:class:`ServerSettings` extends :class:`~medgym.settings.MedgymSettings`: the token, the pixel
limit and the store folder mean the same to the server and to every other medgym process.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from medgym.settings import MedgymSettings

__all__ = ["ServerSettings"]


class ServerSettings(MedgymSettings):
    """How the tool server runs; every field reads ``MEDGYM_<FIELD>`` from the environment.

    Example:
        >>> ServerSettings(token="s3cret").token.get_secret_value()
        's3cret'
    """

    model_config = SettingsConfigDict(env_prefix="MEDGYM_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Interface to bind (loopback by default).")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port.")
    workers: int = Field(default=1, ge=1, le=256, description="uvicorn worker processes.")
    threads: int = Field(
        default=4, ge=1, le=1024, description="Threads per worker running tools and renders."
    )
    store_max_bytes: int = Field(
        default=1024**3, ge=1, description="Image store quota in bytes; the oldest go first."
    )
    store_max_items: int = Field(
        default=10_000, ge=1, description="Image store quota in images; the oldest go first."
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024**2,
        description="Largest request line plus headers (bytes); past it: 431, connection closed.",
    )
    refusal_delay: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description=(
            "Seconds a refusal of abusive traffic is held before it is sent: a 431 (request "
            "head over max_header_bytes; reading paused) and a 429 (heavy-work budget spent). "
            "A client looping on refused requests makes one a second, not hundreds. 0: at once."
        ),
    )
    keep_alive_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="Idle keep-alive connections close after this."
    )
    heavy_threads: int = Field(
        default=1,
        ge=1,
        le=1024,
        description=(
            "Of the threads, how many may decode, upload, replay turns or render views over "
            "1,024 px square at once (the rest serve ordinary renders)."
        ),
    )
    heavy_processes: int = Field(
        default=1,
        ge=0,
        le=64,
        description=(
            "Worker processes that decode images and render views over 1,024 px square, at "
            "`heavy_nice`, so that work never holds the server's interpreter; 0: the heavy "
            "threads do it in the server process."
        ),
    )
    heavy_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of the heavy threads (Linux; 0: same priority as the rest).",
    )
    client_heavy_rate: float = Field(
        default=0.1,
        ge=0,
        le=1024,
        description=(
            "CPU-seconds of heavy work (decodes, uploads, turns, large renders) each client "
            "address earns per second; past its banked share it gets 429 + Retry-After. "
            "About ten new 1,024 px images a second; a server that only its own training "
            "run uses can raise it or turn it off. 0: no per-client quota."
        ),
    )
    client_heavy_burst: float = Field(
        default=1.0,
        gt=0,
        le=86_400,
        description="Most CPU-seconds of heavy work a client may bank (at least the rate).",
    )
    max_queued: int = Field(
        default=64,
        ge=0,
        le=100_000,
        description="Calls that may wait for a thread per queue; more get 503 + Retry-After.",
    )
    opencv_threads: int = Field(
        default=1,
        ge=0,
        le=1024,
        description="OpenCV's own threads per worker (renders already run on several threads).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest request body accepted (bytes)."
    )
    data_root: Path | None = Field(
        default=None, description="Folder server-side image paths must lie under; None: none."
    )
    render_cache_size: int = Field(
        default=128, ge=0, le=65_536, description="Rendered views kept (LRU; 0 turns it off)."
    )
    render_cache_bytes: int = Field(
        default=256 * 1024**2, ge=0, description="Rendered view bytes kept (LRU)."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty turns CORS off."
    )
    log_level: str = Field(default="info", description="uvicorn log level.")

    @field_validator("log_level")
    @classmethod
    def _level_ok(cls, v: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug", "trace")
        if v.lower() not in levels:
            raise ValueError(f"log_level must be one of {levels}; got {v!r}")
        return v.lower()
