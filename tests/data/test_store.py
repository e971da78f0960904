from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from nibabel.testing import data_path as nib_data
from PIL import Image

from medgym.core.images import ImageRef
from medgym.data import clear_image_cache, load_image
from medgym.data.store import ImageStore, default_store, resolve_store, set_default_store
from medgym.errors import ConfigError, DatasetError
from medgym.settings import reload_settings


def png(value: int, size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def fresh_default(monkeypatch):
    """Each test gets its own default store; the process default is restored afterwards."""
    monkeypatch.delenv("MEDGYM_STORE_DIR", raising=False)
    reload_settings()
    set_default_store(None)
    clear_image_cache()
    yield
    set_default_store(None)
    clear_image_cache()


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "disk"])
def test_put_get_roundtrip_and_dedup(tmp_path, on_disk):
    store = ImageStore(tmp_path / "store" if on_disk else None)
    data = png(10)
    ref = store.put_bytes(data, suffix=".png")
    sha = hashlib.sha256(data).hexdigest()
    assert ref == ImageRef(uri=f"store://{sha}", sha256=sha)
    assert store.put_bytes(data, suffix=".png") == ref
    assert len(store) == 1 and sha in store
    assert store.get_bytes(sha) == data
    assert store.suffix_of(sha) == ".png"
    other = store.put_bytes(png(20))
    assert other.sha256 != sha and len(store) == 2
    path = store.path_of(sha)
    if on_disk:
        assert path == tmp_path / "store" / sha[:2] / f"{sha}.png" and path.read_bytes() == data
        assert not list((tmp_path / "store").rglob(".tmp-*"))
    else:
        assert path is None


def test_undecodable_bytes_are_refused_unless_validation_is_off():
    store = ImageStore()
    with pytest.raises(DatasetError, match=r"store://.*expected an image"):
        store.put_bytes(b"definitely not an image")
    assert len(store) == 0
    ref = store.put_bytes(b"opaque", validate=False)
    assert store.get_bytes(ref.sha256) == b"opaque"


@pytest.mark.parametrize("suffix", ["../x", "png", ".p/ng", ".toolongextension"])
def test_suffix_must_be_a_plain_extension(suffix):
    with pytest.raises(ConfigError, match="suffix"):
        ImageStore().put_bytes(png(1), suffix=suffix)


@pytest.mark.parametrize("sha", ["abc", "G" * 64, "A" * 64, "../" + "a" * 61])
def test_malformed_sha_is_a_dataset_error(sha):
    store = ImageStore()
    with pytest.raises(DatasetError, match="sha256"):
        store.get_bytes(sha)
    assert sha not in store


def test_unknown_sha_names_the_store(tmp_path):
    with pytest.raises(DatasetError, match=r"not in ImageStore\("):
        ImageStore(tmp_path).get_bytes("0" * 64)


def test_a_second_store_on_the_same_folder_sees_the_images(tmp_path):
    ref = ImageStore(tmp_path).put_bytes(png(3), suffix=".png")
    other = ImageStore(tmp_path)  # another process pointing at the same MEDGYM_STORE_DIR
    assert ref.sha256 in other and other.suffix_of(ref.sha256) == ".png"
    assert other.get_bytes(ref.sha256) == png(3)


def test_damaged_file_on_disk_is_detected(tmp_path):
    store = ImageStore(tmp_path)
    ref = store.put_bytes(png(4), suffix=".png")
    store.path_of(ref.sha256).write_bytes(png(5))
    with pytest.raises(DatasetError, match="damaged"):
        ImageStore(tmp_path).get_bytes(ref.sha256)


def test_put_file_keeps_double_suffix(tmp_path):
    store = ImageStore(tmp_path / "s")
    ref = store.put_file(Path(nib_data) / "example4d.nii.gz")
    assert store.path_of(ref.sha256).name.endswith(".nii.gz")
    with pytest.raises(DatasetError, match="cannot read"):
        store.put_file(tmp_path / "missing.png")


def test_default_store_from_environment(tmp_path, monkeypatch, fresh_default):
    monkeypatch.setenv("MEDGYM_STORE_DIR", str(tmp_path / "env-store"))
    reload_settings()
    set_default_store(None)
    store = default_store()
    assert store.root == tmp_path / "env-store" and default_store() is store
    mine = ImageStore()
    set_default_store(mine)
    assert default_store() is mine
    with pytest.raises(ConfigError):
        set_default_store("not a store")  # type: ignore[arg-type]


def test_store_refs_resolve_through_the_image_cache(fresh_default):
    data = png(77, size=(9, 4))
    ref = default_store().put_bytes(data, suffix=".png")
    img = load_image(ref)
    assert img.size == (9, 4) and int(img.pixels.max()) == 77
    assert resolve_store(ref).size == (9, 4)


def test_frame_of_a_stored_multipage_tiff(fresh_default):
    pages = [Image.new("L", (5, 5), v) for v in (10, 20, 30)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    ref = default_store().put_bytes(buf.getvalue(), suffix=".tif")
    one = load_image(ref.model_copy(update={"frame": 2}))
    assert one.num_slices == 1 and int(one.pixels.max()) == 30


def test_stored_nifti_without_suffix_is_found_by_content(fresh_default):
    data = (Path(nib_data) / "example4d.nii.gz").read_bytes()
    ref = default_store().put_bytes(data)
    assert load_image(ref).pixels.shape == (24, 96, 128, 1)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (ImageRef(uri="store://" + "f" * 64), "not in ImageStore"),
        (ImageRef(uri="store://nothex"), "sha256"),
        (ImageRef(uri="store://" + "a" * 64, sha256="b" * 64), "disagrees"),
    ],
    ids=["unknown", "malformed", "mismatch"],
)
def test_bad_store_refs(fresh_default, ref, message):
    with pytest.raises(DatasetError, match=message):
        load_image(ref)


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "disk"])
def test_concurrent_puts_are_consistent(tmp_path, on_disk):
    store = ImageStore(tmp_path if on_disk else None)
    blobs = [png(v % 5) for v in range(40)]  # 5 distinct images, each put 8 times
    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = list(pool.map(lambda b: store.put_bytes(b, suffix=".png"), blobs))
    assert len({r.sha256 for r in refs}) == 5 == len(store)
    for blob, ref in zip(blobs, refs, strict=True):
        assert store.get_bytes(ref.sha256) == blob
    arrays = [np.asarray(Image.open(io.BytesIO(store.get_bytes(r.sha256)))) for r in refs[:5]]
    assert [int(a.max()) for a in arrays] == [0, 1, 2, 3, 4]
