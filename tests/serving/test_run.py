from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from medgym.cli import app as cli
from medgym.core.sample import Sample
from medgym.serving.app import create_app
from medgym.serving.run import settings_to_env
from medgym.serving.settings import ServerSettings


def test_settings_survive_the_trip_to_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = ServerSettings(
        port=9001, workers=3, token="t0k", data_root=tmp_path, cors_origins=["http://a.example"],
        max_pixels=1000, render_cache_size=7,
    )  # fmt: skip
    for key, value in settings_to_env(s).items():
        monkeypatch.setenv(key, value)
    assert ServerSettings() == s


def test_serve_command_is_registered() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--workers" in result.output


def test_cors_only_when_configured(settings: ServerSettings) -> None:
    app = create_app(ServerSettings(**{**settings.model_dump(), "cors_origins": ["http://a.b"]}))
    with TestClient(app) as c:
        r = c.get("/v1/health", headers={"Origin": "http://a.b"})
        assert r.headers["access-control-allow-origin"] == "http://a.b"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param({"config": {"max_turns": 0}}, "max_turns must be >= 1", id="bad-config"),
        pytest.param({"config": {"nope": 1}}, "unknown session config", id="unknown-field"),
        pytest.param({"history": ["<answer>yes</answer>"]}, "episode is over", id="finished"),
        pytest.param({"profile": "qwen9"}, "unknown model profile", id="profile"),
    ],
)
def test_turn_errors_are_422(client: TestClient, sample: Sample, body: dict, needle: str) -> None:
    r = client.post(
        "/v1/turn", json={"sample": sample.model_dump(mode="json"), "text": "hi", **body}
    )
    assert r.status_code == 422 and needle in r.json()["detail"], r.text


def test_unknown_tool_config_is_422(client: TestClient, sample: Sample) -> None:
    view = {"bbox_px": [0, 0, 100, 100], "out_size": [100, 100]}
    r = client.post(
        "/v1/tools/call",
        json={"images": [sample.images[0].model_dump(mode="json")], "views": [view],
              "name": "crop", "arguments": {"bbox_2d": [0, 0, 50, 50]}, "tool_config": {"x": 1}},
    )  # fmt: skip
    assert r.status_code == 422 and "tool_config" in r.json()["detail"]


def test_nifti_upload(client: TestClient) -> None:
    nib = pytest.importorskip("nibabel")
    vol = np.arange(32 * 24 * 5, dtype=np.int16).reshape(32, 24, 5)
    buf = io.BytesIO()
    buf.write(nib.Nifti1Image(vol, np.eye(4)).to_bytes())
    r = client.post("/v1/images", content=gzip.compress(buf.getvalue()),
                    params={"filename": "vol.nii.gz"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["num_slices"] == 5 and r.json()["ref"]["uri"].startswith("store://")
