"""Issue 18 D6: uploads with trailing junk are refused; the store keeps to its quota."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medgym.data.store import ImageStore, trailing_bytes
from medgym.errors import ConfigError, DatasetError


def _image(fmt: str, seed: int = 0, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP"])
def test_trailing_junk_is_measured_and_refused(fmt: str) -> None:
    data = _image(fmt)
    assert trailing_bytes(data) == 0
    junk = data + b"IEND\xff\xd9" + b"x" * 1000  # junk that mimics end markers
    assert trailing_bytes(junk) == 1006
    with pytest.raises(DatasetError, match="1006 byte"):
        ImageStore().put_bytes(junk, suffix=".img")
    assert ImageStore().put_bytes(data).sha256  # the image alone is fine


def test_memory_store_evicts_the_oldest_past_its_quota() -> None:
    images = [_image("PNG", seed=k) for k in range(4)]
    store = ImageStore(max_bytes=int(len(images[0]) * 2.5))
    refs = [store.put_bytes(d) for d in images]
    assert [r.sha256 in store for r in refs] == [False, False, True, True]
    counted = ImageStore(max_items=3)
    refs = [counted.put_bytes(d) for d in images]
    assert len(counted) == 3 and refs[0].sha256 not in counted


def test_disk_store_evicts_the_oldest_files(tmp_path: Path) -> None:
    images = [_image("PNG", seed=k) for k in range(4)]
    store = ImageStore(tmp_path, max_items=2)
    refs = []
    for k, d in enumerate(images):
        refs.append(store.put_bytes(d, suffix=".png"))
        path = store.path_of(refs[-1].sha256)
        assert path is not None
        os.utime(path, (time.time() + k, time.time() + k))  # distinct ages
    assert len(store) == 2
    assert [r.sha256 in store for r in refs] == [False, False, True, True]


def test_one_upload_over_the_quota_is_refused() -> None:
    data = _image("PNG", size=64)
    with pytest.raises(DatasetError, match="quota"):
        ImageStore(max_bytes=len(data) - 1).put_bytes(data)
    with pytest.raises(ConfigError, match="max_items"):
        ImageStore(max_items=0)
