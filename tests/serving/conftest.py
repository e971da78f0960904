from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture()
def live_server(settings: ServerSettings, loopback_server: Any) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 (free port), started and stopped by the test."""
    with loopback_server(create_app(settings)) as url:
        yield url
