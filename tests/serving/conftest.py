from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from medgym.core.sample import Sample
from medgym.data import load
from medgym.serving.app import create_app
from medgym.serving.settings import ServerSettings


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _restore_default_store() -> Iterator[None]:
    """create_app points the process-wide store at ``store_dir``; undo it after each test."""
    from medgym.data.store import set_default_store

    yield
    set_default_store(None)


@pytest.fixture(scope="session")
def sample() -> Sample:
    return load("synthetic", split="test", num_samples=1)[0]


@pytest.fixture()
def settings(tmp_path: Path) -> ServerSettings:
    root = tmp_path / "data"
    root.mkdir()
    (root / "scan.png").write_bytes(png_bytes())
    (tmp_path / "secret.png").write_bytes(png_bytes())
    return ServerSettings(
        data_root=root, store_dir=tmp_path / "store", max_body_bytes=2 * 1024 * 1024
    )


@pytest.fixture()
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def live_server(settings: ServerSettings) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 (free port), started and stopped by the test."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
