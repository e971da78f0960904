"""Heavy steps in worker processes: same results as in-process, errors and CPU come back."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medgym.core.images import ImageRef
from medgym.core.view import ViewSpec, render_native
from medgym.data.cache import decode
from medgym.errors import DatasetError
from medgym.serving import create_app, shared
from medgym.serving.offload import Offload, WorkerLost, decode_image
from medgym.serving.quota import thread_cpu
from medgym.serving.settings import ServerSettings

from .conftest import png_bytes

BIG = ImageRef(uri="synthetic://v1?kind=xray&size=1024&seed=5&noise=1&decoys=0")


@pytest.fixture(scope="module")
def offload() -> Offload:
    return Offload(1, nice=5)


def test_a_decode_in_a_worker_matches_one_in_process(offload: Offload) -> None:
    image = offload.decode(BIG, max_pixels=10**7)
    assert image.pixels.dtype == decode(BIG).pixels.dtype
    np.testing.assert_array_equal(image.pixels, decode(BIG).pixels)
    assert image.modality == decode(BIG).modality


def test_a_worker_refuses_too_many_pixels_with_the_servers_error(offload: Offload) -> None:
    with pytest.raises(DatasetError, match=r"1048576 pixels; this server accepts at most 1000"):
        offload.decode(BIG, max_pixels=1000)


def test_upload_bytes_decode_in_the_worker_and_junk_after_them_is_refused(
    offload: Offload,
) -> None:
    data = png_bytes(40, 30)
    image = offload.decode(ImageRef(uri="upload"), (data, "upload.png"), max_pixels=10**6)
    assert (image.width, image.height) == (40, 30)
    with pytest.raises(DatasetError, match=r"byte\(s\) after the end of the image data"):
        offload.decode(ImageRef(uri="upload"), (data + b"junk", "upload.png"), max_pixels=10**6)
    # the same function in process: one rule for both paths
    with pytest.raises(DatasetError, match="after the end"):
        decode_image(ImageRef(uri="upload"), (data + b"junk", "upload.png"), 10**6)


def test_a_render_in_a_worker_matches_render_native(offload: Offload) -> None:
    image = decode(BIG)
    view = ViewSpec(bbox_px=(100, 50, 900, 850), out_size=(1536, 1536))
    np.testing.assert_array_equal(offload.render(image, view), render_native(image, view))


def test_the_workers_cpu_is_charged_to_the_calling_thread(offload: Offload) -> None:
    ref = ImageRef(uri="synthetic://v1?kind=xray&size=2048&seed=6&noise=1&decoys=0")
    offload.decode(ref, max_pixels=10**8)  # the fork of a warm worker is not in the figure
    own, total = time.thread_time(), thread_cpu()
    offload.decode(ref, max_pixels=10**8)
    spent_here = time.thread_time() - own
    charged = thread_cpu() - total
    # the decode's CPU ran in the worker; this thread only waited on the pipe
    assert charged > spent_here + 0.005, (charged, spent_here)


def test_the_worker_runs_at_lower_priority(offload: Offload) -> None:
    if not hasattr(os, "getpriority"):
        pytest.skip("no niceness on this OS")
    worker = offload._call(os.getpid)
    assert worker != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, worker) >= os.getpriority(os.PRIO_PROCESS, 0) + 5


def test_a_dead_worker_is_a_retryable_error_and_the_next_call_gets_a_new_one() -> None:
    offload = Offload(1, nice=3)
    with pytest.raises(WorkerLost, match="worker process died while running _exit"):
        offload._call(os._exit, 3)
    assert offload.decode(BIG, max_pixels=10**7).width == 1024


def test_the_app_decodes_and_renders_large_views_in_its_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_decode, real_render = Offload.decode, Offload.render

    def spy_decode(self: Offload, *args: object, **kwargs: object) -> object:
        calls.append("decode")
        return real_decode(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_render(self: Offload, *args: object, **kwargs: object) -> object:
        calls.append(f"render in thread {threading.get_ident() != main}")
        return real_render(self, *args, **kwargs)  # type: ignore[arg-type]

    main = threading.get_ident()
    monkeypatch.setattr(Offload, "decode", spy_decode)
    monkeypatch.setattr(Offload, "render", spy_render)
    ref = {"uri": "synthetic://v1?kind=xray&size=512&seed=8&noise=1&decoys=0"}
    app = create_app(ServerSettings(heavy_processes=1))
    with TestClient(app) as client:
        assert client.post("/v1/images/register", json={"ref": ref}).status_code == 200
        small = {"bbox_px": [0, 0, 256, 256], "out_size": [256, 256]}
        big = {"bbox_px": [0, 0, 256, 256], "out_size": [2048, 2048]}
        for view in (small, big):
            r = client.post("/v1/render", json={"images": [ref], "view": view, "encoding": "raw"},
                            headers={"Accept": "application/octet-stream"})  # fmt: skip
            assert r.status_code == 200, r.text
        assert len(r.content) == 2048 * 2048
        expected = render_native(decode(ImageRef(**ref)), ViewSpec(**big))
        np.testing.assert_array_equal(np.frombuffer(r.content, np.uint8), expected.ravel())
        # kept: the ordinary view; not kept: the large one (it would flush ordinary ones)
        service, image_ref = app.state.service, ImageRef(**ref)
        assert service.cached_pixels(image_ref, ViewSpec(**small)) is not None
        assert service.cached_pixels(image_ref, ViewSpec(**big)) is None
        upload = client.post("/v1/images", content=png_bytes(), params={"filename": "a.png"})
        assert upload.status_code == 200 and upload.json()["width"] == 64
        kept = set(shared._KEPT)
        assert kept and all(os.path.exists(p) for p in kept)
    # the app stopped: its images' files are removed (uvicorn's SIGTERM exit runs no finalizer)
    assert not any(os.path.exists(p) for p in kept)
    # one decode per new image (the upload decoded once, not twice), one large render
    assert calls == ["decode", "render in thread True", "decode"], calls


def test_heavy_processes_zero_keeps_every_step_in_the_server_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no worker process expected")

    monkeypatch.setattr(Offload, "_call", forbidden)
    ref = {"uri": "synthetic://v1?kind=xray&size=256&seed=9&noise=1&decoys=0"}
    with TestClient(create_app(ServerSettings(heavy_processes=0))) as client:
        assert client.post("/v1/images/register", json={"ref": ref}).status_code == 200
        view = {"bbox_px": [0, 0, 256, 256], "out_size": [1100, 1100]}
        r = client.post("/v1/render", json={"images": [ref], "view": view, "encoding": "raw"},
                        headers={"Accept": "application/octet-stream"})  # fmt: skip
        assert r.status_code == 200 and len(r.content) == 1100 * 1100


def test_apps_share_a_pool_that_stops_when_the_last_started_one_closes() -> None:
    from medgym.serving import offload as module

    first, second = Offload(1, nice=4), Offload(1, nice=4)
    first.start()
    second.start()
    pool = module._POOLS[(1, 4)]
    first.close()
    first.close()  # a second close releases nothing more
    assert module._POOLS[(1, 4)] is pool
    assert second._call(os.getpid) != os.getpid()
    second.close()
    assert (1, 4) not in module._POOLS
    assert first.decode(BIG, max_pixels=10**7).width == 1024  # a call after close starts anew
    module._drop((1, 4), module._POOLS[(1, 4)], wait=True)


def test_a_decoded_image_is_a_shared_file_that_renders_send_by_path(
    offload: Offload, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from medgym.serving import offload as module

    image = offload.decode(BIG, max_pixels=10**7)
    assert not image.pixels.flags.writeable
    file, files = module._FILES[image], len(module._FILES)
    assert Path(file.path).exists()
    sent: list[object] = []
    real = Offload._call

    def spy(self: Offload, fn: object, *args: object) -> object:
        sent.append(args[0])
        return real(self, fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Offload, "_call", spy)
    view = ViewSpec(bbox_px=(0, 0, 512, 512), out_size=(1100, 1100))
    expected = render_native(decode(BIG), view)
    np.testing.assert_array_equal(offload.render(image, view), expected)
    assert isinstance(sent[-1], tuple)  # (fields, file): the pixels did not travel
    Path(file.path).unlink()  # removed under the server: the pixels travel instead
    np.testing.assert_array_equal(offload.render(image, view), expected)
    assert sent[-1] is image
    sent.clear()
    del image
    import gc

    gc.collect()
    assert len(module._FILES) == files - 1  # the image is gone and so is its entry


def test_an_image_in_constant_use_is_not_the_one_evicted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls answered from decoded images count as uses in the image cache (its LRU order)."""
    import gc

    from medgym.data import cache as cache_module
    from medgym.data.cache import ImageCache

    monkeypatch.setattr(cache_module, "_CACHE", ImageCache(maxsize=2))
    service = create_app(ServerSettings(heavy_processes=0)).state.service
    a, b, c = (
        ImageRef(uri=f"synthetic://v1?kind=xray&size=64&seed={k}&noise=1&decoys=0")
        for k in (71, 72, 73)
    )
    service.load(a)
    service.load(b)
    assert service.loaded([a]) is not None  # a used after b: b is now the oldest
    service.load(c)  # one too many: the oldest goes
    gc.collect()
    assert service.loaded([a]) is not None
    assert service.loaded([b]) is None
