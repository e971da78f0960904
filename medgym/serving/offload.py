"""Heavy steps in worker processes: an attacker's decodes cannot hold the cheap calls' interpreter.

The heavy queue (:mod:`medgym.serving.work`) bounds how many decodes and large renders run at
once, and at what priority, but on threads of the server's own process their numpy and codec
work holds the GIL in stretches that the event loop and the ordinary renders wait behind, and a
lower niceness does not shorten a stretch (``docs/serving.md``, the abuse phase). An
:class:`Offload` runs those steps in separate processes instead, at a lower CPU priority, so the
server's interpreter only waits on a pipe:

- :meth:`Offload.decode`: an :class:`~medgym.core.images.ImageRef` (or the bytes of an upload)
  to a :class:`~medgym.core.images.MedImage`, refused in the worker when it has more pixels than
  allowed, so an oversized image never crosses back;
- :meth:`Offload.render`: :func:`~medgym.core.view.render_native` of a view.

The workers are stateless: each call carries what it needs, and each reports the CPU time it
used so the caller can charge it to the client (:func:`medgym.serving.quota.charge_elsewhere`).
Pixels never cross the result pipe (pickled, a 16 MB render cost the server more CPU than
rendering it): a worker writes them to a shared-memory file the server maps
(:mod:`medgym.serving.shared`). A decoded image keeps its file while the server caches it, so a
render sends the worker the file's path, not the pixels.

One pool per ``(processes, nice)`` is shared by every app in a process: started by the first
call or by :meth:`Offload.start` (an app's startup), stopped when the last app that started it
calls :meth:`Offload.close`. A worker that dies (killed for memory, a crashing codec) fails its
call with :class:`WorkerLost`, answered 503; the next call starts a fresh pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.core.view import ViewSpec
from medgym.errors import DatasetError, MedGymError
from medgym.serving import shared
from medgym.serving.quota import charge_elsewhere

__all__ = ["Offload", "WorkerLost", "check_pixels", "decode_image", "shutdown_all"]

T = TypeVar("T")


class WorkerLost(MedGymError):
    """A worker process died during the call (answered 503 with ``Retry-After``)."""

    retry_after = 1


def decode_image(ref: ImageRef, upload: tuple[bytes, str] | None, max_pixels: int) -> MedImage:
    """Decode ``ref`` (or an upload's bytes) and refuse more than ``max_pixels`` pixels.

    Args:
        ref: The reference (an absolute path or a URI this process can resolve).
        upload: ``(data, name)`` to decode instead of resolving ``ref``: an upload's bytes, or a
            ``store://`` image's bytes read by the caller (the worker has no image store).
            Bytes followed by anything after the image's end are refused.
        max_pixels: Most pixels (all slices) accepted.

    Raises:
        DatasetError: Undecodable, junk after the image, or more pixels than allowed.
    """
    if upload is None:
        from medgym.data.cache import decode

        image = decode(ref)
    else:
        from medgym.data.io import read_image_bytes
        from medgym.data.store import trailing_bytes

        data, name = upload
        image = read_image_bytes(data, name=name, frame=ref.frame, axis=ref.axis)
        junk = trailing_bytes(data)
        if junk:
            raise DatasetError(
                f"{name}: {junk} byte(s) after the end of the image data; send the image file alone"
            )
    check_pixels(ref, image, max_pixels)
    return image


def check_pixels(ref: ImageRef, image: MedImage, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels (all slices).

    Raises:
        DatasetError: Naming the image, its pixel count and the limit.
    """
    n = image.num_slices * image.width * image.height
    if n > max_pixels:
        raise DatasetError(
            f"image {ref.uri} has {n} pixels; this server accepts at most {max_pixels} "
            "(MEDGYM_MAX_PIXELS)"
        )


# ---------------------------------------------------------------- in the worker
_Meta = dict[str, Any]  # a MedImage's fields but its pixels


def _split(image: MedImage) -> _Meta:
    return {f.name: getattr(image, f.name) for f in dataclasses.fields(image) if f.name != "pixels"}


def _decode_job(
    ref: ImageRef, upload: tuple[bytes, str] | None, max_pixels: int, path: str
) -> tuple[_Meta, shared.SharedArray]:
    image = decode_image(ref, upload, max_pixels)
    return _split(image), shared.write(image.pixels, path)


def _render_job(
    source: MedImage | tuple[_Meta, shared.SharedArray], view: ViewSpec, path: str
) -> shared.SharedArray:
    from medgym.core.view import render_native

    if not isinstance(source, MedImage):  # the server's file of the image: mapped, not copied
        meta, pixels = source
        source = MedImage(pixels=shared.attach(pixels, keep=True), **meta)
    return shared.write(render_native(source, view), path)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """In the worker: ``fn(*args)`` and the CPU time it took (an error propagates as is)."""
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


# ---------------------------------------------------------------- in the server
_FILES: weakref.WeakKeyDictionary[MedImage, shared.SharedArray] = weakref.WeakKeyDictionary()
"""The shared-memory file of each image a worker decoded, while the image lives."""


def _init_worker(nice: int, opencv_threads: int) -> None:
    """Lower the worker's priority; one OpenCV thread (the pool's size is the parallelism)."""
    with contextlib.suppress(OSError):  # not allowed: keep the server's priority
        os.nice(nice)
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(opencv_threads)


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where there is one (forking a threaded server is unsafe), else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # the fork server imports what every worker needs once; workers are forks of it
        ctx.set_forkserver_preload(["medgym.serving.offload", "medgym.data.cache"])
        return ctx
    return multiprocessing.get_context("spawn")


_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}
_USERS: dict[tuple[int, int], int] = {}  # started and not yet closed, per pool
_POOLS_LOCK = threading.Lock()


def _pool(key: tuple[int, int]) -> ProcessPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            processes, nice = key
            pool = ProcessPoolExecutor(
                processes, mp_context=_context(), initializer=_init_worker, initargs=(nice, 1)
            )
            _POOLS[key] = pool
        return pool


def _drop(key: tuple[int, int], pool: ProcessPoolExecutor, *, wait: bool) -> None:
    with _POOLS_LOCK:
        if _POOLS.get(key) is pool:
            del _POOLS[key]
    pool.shutdown(wait=wait, cancel_futures=True)


def shutdown_all() -> None:
    """Stop every worker pool of this process (a later call starts a new one)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.items())
        _USERS.clear()
    for key, pool in pools:
        _drop(key, pool, wait=True)


class Offload:
    """Runs decodes and renders in ``processes`` worker processes at niceness ``nice``.

    The calls block their (worker) thread until the result is back; run them from the heavy
    :class:`~medgym.serving.work.WorkQueue`, which bounds how many wait at once.

    Args:
        processes: Worker processes (>= 1).
        nice: Their CPU niceness (Linux; 0: the server's priority).
    """

    def __init__(self, processes: int, nice: int = 0) -> None:
        self.processes = max(1, processes)
        self.nice = max(0, nice)
        self._started = False

    @property
    def _key(self) -> tuple[int, int]:
        return (self.processes, self.nice)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        pool = _pool(self._key)
        try:
            result, cpu = pool.submit(_timed, fn, *args).result()
        except BrokenProcessPool as e:
            _drop(self._key, pool, wait=False)
            raise WorkerLost(
                f"a worker process died while running {fn.__name__} (killed for memory, or a "
                f"crashing decoder); retry after {WorkerLost.retry_after} s"
            ) from e
        charge_elsewhere(cpu)
        return result

    def _call_to_file(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`_call` of a job that writes a new shared file (removed if the call fails)."""
        path = shared.new_path()
        try:
            return self._call(fn, *args, path)
        except BaseException:
            shared.remove(path)
            raise

    def decode(
        self, ref: ImageRef, upload: tuple[bytes, str] | None = None, *, max_pixels: int
    ) -> MedImage:
        """:func:`decode_image` in a worker process; the pixels are a read-only shared map."""
        meta, pixels = self._call_to_file(_decode_job, ref, upload, max_pixels)
        image = MedImage(pixels=shared.attach(pixels, keep=True), **meta)
        shared.keep_while(image, pixels)
        _FILES[image] = pixels
        return image

    def render(self, image: MedImage, view: ViewSpec) -> np.ndarray:
        """``render_native(image, view)`` in a worker process (a read-only uint8 array).

        An image a worker decoded goes to the worker as its file's path; any other is pickled.
        """
        file = _FILES.get(image)
        if file is not None:
            with contextlib.suppress(FileNotFoundError):  # removed under us: send the pixels
                return shared.attach(self._call_to_file(_render_job, (_split(image), file), view))
        return shared.attach(self._call_to_file(_render_job, image, view))

    def start(self) -> None:
        """Start the workers now (the first request does not wait for them); pair with close."""
        if not self._started:
            with _POOLS_LOCK:
                _USERS[self._key] = _USERS.get(self._key, 0) + 1
            self._started = True
            shared.sweep()  # files left by servers that were killed
        pool = _pool(self._key)
        for f in [pool.submit(_timed, os.getpid) for _ in range(self.processes)]:
            with contextlib.suppress(BrokenProcessPool):
                f.result()

    def close(self) -> None:
        """Release what :meth:`start` took; the pool stops when no started user is left."""
        if not self._started:
            return
        self._started = False
        with _POOLS_LOCK:
            users = _USERS.get(self._key, 1) - 1
            if users > 0:
                _USERS[self._key] = users
                return
            _USERS.pop(self._key, None)
            pool = _POOLS.get(self._key)
        if pool is not None:
            _drop(self._key, pool, wait=True)
        if not _USERS:  # the last app of this process stops: no worker will read them again
            shared.remove_kept()
