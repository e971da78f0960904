"""Shared test configuration: offline, single-threaded numerics, a bounded hypothesis profile."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def uvicorn_on_loopback(app: Any) -> Iterator[str]:
    """A real uvicorn serving ``app`` on 127.0.0.1 (free port), stopped on exit; yields its URL."""
    import threading
    import time

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def loopback_server() -> Callable[[Any], contextlib.AbstractContextManager[str]]:
    """:func:`uvicorn_on_loopback`, for fixtures of any scope: ``with loopback_server(app) as url``."""
    return uvicorn_on_loopback


@pytest.fixture()
def serve_app() -> Iterator[Callable[[Any], str]]:
    """``serve_app(app) -> url``: runs ``app`` on a real uvicorn until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(uvicorn_on_loopback(app))


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test reads ``MEDGYM_*`` anew (settings are otherwise read once per process)."""
    from medgym.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def small_model() -> Any:
    """The tiny model's sizes at their smallest (about 200k weights): fast enough for tests.

    The shipped default (:class:`TinyVLMConfig`) is ten times larger, sized for the learning
    benchmark; tests that only need the code paths use this one.
    """
    pytest.importorskip("torch")
    from medgym.agents.tiny_vlm import TinyVLMConfig

    return TinyVLMConfig(
        hidden_size=64, num_layers=2, intermediate_size=128, vision_hidden_size=32,
        vision_depth=2, corpus_samples=16,
    )  # fmt: skip


@pytest.fixture(scope="session")
def format_warm_config(small_model: Any) -> Any:
    """Warm-start settings that teach the small model the format (16/16 answers at 52 s)."""
    from medgym.agents.tiny_vlm import WarmStartConfig

    return WarmStartConfig(
        num_samples=32, max_steps=800, batch_size=4, lr=3e-3, view_steps=0, model=small_model
    )


@pytest.fixture(scope="session")
def format_warm_dir(tmp_path_factory: pytest.TempPathFactory, format_warm_config: Any) -> Any:
    """The small model warm-started until it writes tool calls and answers (about 50 s).

    Shared by every test that runs the model through an episode loop (TRL, the GRPO loop, the
    demo's evaluation path), so they all drive one checkpoint with its recorded profile.
    """
    from medgym.agents.tiny_vlm import warm_start

    return warm_start(format_warm_config, cache=tmp_path_factory.mktemp("format-warm"))
