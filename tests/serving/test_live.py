"""Against a real uvicorn on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from medgym.core.sample import Sample
from medgym.core.view import ViewSpec
from medgym.envs.env import MedVQAEnv
from medgym.errors import ToolError
from medgym.serving.client import AsyncToolServerClient, ToolServerClient, ToolServerError

pytestmark = pytest.mark.integration

CALL = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [10, 10, 300, 260]}}</tool_call>'


def test_env_with_tool_server_matches_in_process(live_server: str, sample: Sample) -> None:
    local = MedVQAEnv(samples=[sample])
    remote = MedVQAEnv(samples=[sample], tool_server=live_server)
    try:
        for action in (CALL, '<tool_call>{"name": "zoom", "arguments": {}}</tool_call>'):
            (lo, li), (ro, ri) = local.reset(seed=0), remote.reset(seed=0)
            assert lo["text"] == ro["text"] and li["views"] == ri["views"]
            for a, b in zip(lo["images"], ro["images"], strict=True):
                np.testing.assert_array_equal(a, b)
            lstep, rstep = local.step(action), remote.step(action)
            assert lstep[0]["text"] == rstep[0]["text"]
            assert len(lstep[0]["images"]) == len(rstep[0]["images"])
            for a, b in zip(lstep[0]["images"], rstep[0]["images"], strict=True):
                np.testing.assert_array_equal(a, b)
            assert lstep[1:4] == rstep[1:4] and lstep[4]["metrics"] == rstep[4]["metrics"]
    finally:
        local.close()
        remote.close()


def test_sync_and_async_clients(live_server: str, sample: Sample) -> None:
    with ToolServerClient(live_server) as c:
        assert c.health()
        d = c.register(sample.images[0])
        view = ViewSpec(bbox_px=(0, 0, d.width, d.height), out_size=(448, 448))
        r = c.call_tool(sample.images, [view], "crop", {"bbox_2d": [0, 0, 100, 100]})
        assert r.ok and r.view is not None
        with pytest.raises(ToolError, match="did you mean `zoom_in`"):
            c.call_tool(sample.images, [view], "zoom", {})
        png = c.render(sample.images, r.view, encoding="png")
        for enc in ("raw", "npy", "png", "webp"):  # binary body, result in a header
            res, px = c.call_tool_pixels(
                sample.images, [view], "crop", {"bbox_2d": [0, 0, 100, 100]}, encoding=enc
            )
            assert res.view == r.view and px is not None
            np.testing.assert_array_equal(px, png)

    async def run() -> np.ndarray:
        async with AsyncToolServerClient(live_server) as ac:
            assert await ac.health()
            res, px = await ac.call_tool_pixels(
                sample.images, [view], "crop", {"bbox_2d": [0, 0, 100, 100]}, encoding="npy"
            )
            assert res.text == r.text
            raw = await ac.render(sample.images, r.view, encoding="raw")
            np.testing.assert_array_equal(px, raw)
            return raw

    np.testing.assert_array_equal(asyncio.run(run()), png)


def test_connection_errors_are_retried_then_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    c = ToolServerClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01, timeout=1)
    with pytest.raises(ToolServerError, match="cannot reach"):
        c.health()


def test_volume_env_with_tool_server_matches_in_process(live_server: str) -> None:
    """set_plane needs the slice spacing: the server's description carries it, so a remote
    session sizes and measures a coronal reformat as the in-process one does."""
    from medgym.data import load

    sample = next(s for s in load("synthetic3d", num_samples=8) if s.question_type == "size")
    kw = {"samples": [sample], "dataset": None, "tools": ["set_plane", "measure"]}
    local = MedVQAEnv(**kw)
    remote = MedVQAEnv(**kw, tool_server=live_server)
    plane = '<tool_call>{"name": "set_plane", "arguments": {"plane": "coronal"}}</tool_call>'
    line = (
        '<tool_call>{"name": "measure", "arguments": {"line_2d": [0, 0, 0, 300], '
        '"image_index": 1}}</tool_call>'
    )
    try:
        local.reset(seed=0)
        remote.reset(seed=0)
        for action in (plane, line):
            lstep, rstep = local.step(action), remote.step(action)
            assert lstep[0]["text"] == rstep[0]["text"]
            for a, b in zip(lstep[0]["images"], rstep[0]["images"], strict=True):
                np.testing.assert_array_equal(a, b)
        assert "mm" in lstep[0]["text"] and "records no pixel spacing" not in lstep[0]["text"]
    finally:
        local.close()
        remote.close()
