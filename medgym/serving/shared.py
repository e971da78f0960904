"""Arrays between processes through shared-memory files: written once, mapped, never pickled.

A worker process (:mod:`medgym.serving.offload`) that returned a 4,096 px render through its
result pipe cost the server 47 ms of its own CPU per call, more than the render (33 ms): the
pickle copies and the pipe's 64 KB steps. Here the worker writes the array to a file under
``/dev/shm`` (memory, not disk; the system's temporary folder where there is none), whose path
the server chose, and the server maps it read-only: one copy, in the worker.

A file the server keeps (a decoded image in its cache) stays under its path while the image
lives, so a worker can map it for a render instead of receiving its pixels; it is removed when
the image is collected. Names carry the server's process id: :func:`sweep` removes the files of
servers that no longer run (killed before they could clean up).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SharedArray", "attach", "keep_while", "new_path", "remove", "remove_kept", "sweep", "write",
]  # fmt: skip

_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
_PREFIX = "medgym-shared-"
_KEPT: set[str] = set()  # files kept by keep_while and not yet removed


@dataclass(frozen=True)
class SharedArray:
    """Where an array was written, and how to read it back.

    Attributes:
        path: The file.
        shape: The array's shape.
        dtype: Its dtype (``np.dtype.str``).
    """

    path: str
    shape: tuple[int, ...]
    dtype: str


def new_path() -> str:
    """A fresh file path for :func:`write`, named after this (the server's) process."""
    return str(_DIR / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")


def write(array: np.ndarray, path: str) -> SharedArray:
    """Write ``array`` (C order) to a new file at ``path``; readable only by this user."""
    array = np.ascontiguousarray(array)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        if array.size:  # a view with a zero in its shape cannot be cast to bytes
            f.write(array.data.cast("B"))
    return SharedArray(path, tuple(array.shape), array.dtype.str)


def attach(shared: SharedArray, *, keep: bool = False) -> np.ndarray:
    """Map ``shared`` read-only, without copying.

    Args:
        shared: What :func:`write` returned.
        keep: Leave the file in place (see :func:`keep_while`); by default it is removed now
            (the mapping stays valid until the array is collected).

    Raises:
        FileNotFoundError: The file is gone.
    """
    dtype = np.dtype(shared.dtype)
    if dtype.itemsize * int(np.prod(shared.shape)) == 0:
        array = np.empty(shared.shape, dtype)  # mmap cannot map an empty file
    else:
        with open(shared.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        array = np.frombuffer(mapped, dtype).reshape(shared.shape)
    if not keep:
        remove(shared.path)
    return array


def keep_while(owner: object, shared: SharedArray) -> None:
    """Remove ``shared``'s file when ``owner`` is collected, or by :func:`remove_kept`."""
    _KEPT.add(shared.path)
    weakref.finalize(owner, remove, shared.path)


def remove(path: str) -> None:
    """Remove a file of :func:`write` (gone already: nothing to do)."""
    _KEPT.discard(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_kept() -> int:
    """Remove every file :func:`keep_while` keeps; returns how many.

    The arrays mapped from them stay valid. A server calls this when it stops: uvicorn ends a
    process on SIGTERM by raising the signal again, so neither finalizers nor ``atexit`` run.
    """
    paths = list(_KEPT)
    for path in paths:
        remove(path)
    return len(paths)


def sweep() -> int:
    """Remove the files of server processes that no longer run; returns how many."""
    removed = 0
    for path in _DIR.glob(f"{_PREFIX}*"):
        pid = path.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        remove(str(path))
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True
