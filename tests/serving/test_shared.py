"""Arrays through shared-memory files: same values, read-only, files removed when done."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medgym.serving import shared


def test_an_array_comes_back_equal_read_only_and_its_file_is_gone() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)[:, ::-1]  # not C order
    out = shared.attach(shared.write(array, path := shared.new_path()))
    np.testing.assert_array_equal(out, array)
    assert out.dtype == np.float32 and not out.flags.writeable
    assert not Path(path).exists()


def test_an_empty_array_round_trips() -> None:
    out = shared.attach(shared.write(np.zeros((0, 5), np.uint8), shared.new_path()))
    assert out.shape == (0, 5)


def test_a_kept_file_lives_as_long_as_its_owner() -> None:
    class Owner:
        pass

    owner = Owner()
    file = shared.write(np.ones((4, 4), np.uint8), shared.new_path())
    view = shared.attach(file, keep=True)
    shared.keep_while(owner, file)
    assert Path(file.path).exists()
    np.testing.assert_array_equal(shared.attach(file, keep=True), view)  # mapped again
    del owner
    gc.collect()
    assert not Path(file.path).exists()
    assert view.sum() == 16  # the mapping outlives the name


def test_sweep_removes_files_of_dead_servers_only() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    ours = shared.write(np.ones(3, np.uint8), shared.new_path())
    theirs = ours.path.replace(f"-{os.getpid()}-", f"-{pid}-")
    Path(theirs).write_bytes(b"x")
    assert shared.sweep() >= 1
    assert not Path(theirs).exists() and Path(ours.path).exists()
    shared.remove(ours.path)
    shared.remove(ours.path)  # removing twice is fine


def test_write_refuses_to_overwrite() -> None:
    path = shared.new_path()
    shared.write(np.ones(2, np.uint8), path)
    with pytest.raises(FileExistsError):
        shared.write(np.ones(2, np.uint8), path)
    shared.remove(path)


def test_remove_kept_removes_every_kept_file_and_leaves_the_arrays_valid() -> None:
    owners = [type("Owner", (), {})() for _ in range(3)]
    files = [shared.write(np.full(4, k, np.uint8), shared.new_path()) for k in range(3)]
    arrays = [shared.attach(f, keep=True) for f in files]
    for owner, file in zip(owners, files, strict=True):
        shared.keep_while(owner, file)
    assert shared.remove_kept() >= 3
    assert not any(Path(f.path).exists() for f in files)
    assert [int(a[0]) for a in arrays] == [0, 1, 2]
