"""A folder of DICOM slices read as one volume: order, spacing, and the refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

from medgym.core.sample import ImageRef  # noqa: E402
from medgym.data.cache import load_image  # noqa: E402
from medgym.data.io import read_image_file  # noqa: E402
from medgym.errors import ConfigError, DatasetError  # noqa: E402

_TESTS = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"


def _write_series(
    folder: Path,
    depths: list[float],
    *,
    series: list[str] | None = None,
    spacing: list[float] | None = None,
    orientation: list[list[float]] | None = None,
    positions: bool = True,
) -> Path:
    """One CT_small.dcm slice per depth, its pixels offset by the slice's rank in ``depths``.

    Files are named in reverse depth order, so a reader that sorts by name gets them wrong.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rank = {d: i for i, d in enumerate(sorted(depths))}
    for i, depth in enumerate(depths):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.InstanceNumber = rank[depth] + 1
        ds.SeriesInstanceUID = (series or ["1.2.3"] * len(depths))[i]
        ds.ImageOrientationPatient = (orientation or [[1, 0, 0, 0, 1, 0]] * len(depths))[i]
        ds.PixelSpacing = [(spacing or [0.66] * len(depths))[i]] * 2
        if positions:
            ds.ImagePositionPatient = [-80.0, -80.0, depth]
        else:
            del ds.ImagePositionPatient
        ds.WindowCenter, ds.WindowWidth = 40, 400
        arr = ds.pixel_array.astype(np.int16)
        arr[:] = 100 * rank[depth]  # stored value; HU = value + intercept (slope 1)
        ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"slice{len(depths) - i:03d}")
    return folder


def test_a_series_becomes_a_volume_sorted_along_its_normal(tmp_path):
    folder = _write_series(tmp_path / "s", [4.0, -1.0, 6.5, 1.5, 9.0])  # 2.5 mm apart
    img = read_image_file(folder)
    assert img.num_slices == 5 and img.size == (128, 128)
    intercept = float(pydicom.dcmread(folder / "slice001").RescaleIntercept)
    means = [float(img.pixels[k].mean()) - intercept for k in range(5)]
    assert means == pytest.approx([0, 100, 200, 300, 400])  # inferior to superior
    assert img.slice_spacing_mm == pytest.approx(2.5)
    assert img.spacing_mm == pytest.approx((0.66, 0.66))
    assert img.meta["format"] == "DICOM series" and img.meta["frames"] == 5
    assert img.meta["plane"] == "axial" and img.modality == "CT"
    assert (img.default_window.level, img.default_window.width) == (40, 400)


def test_a_real_series_from_pydicoms_test_files_reads(tmp_path):
    folder = shutil.copytree(_TESTS / "98892001" / "CT5N", tmp_path / "CT5N")
    img = load_image(ImageRef(uri=str(folder)))
    assert img.num_slices == 5 and img.slice_spacing_mm == pytest.approx(2.5)
    z = [float(pydicom.dcmread(folder / f).ImagePositionPatient[2]) for f in img.meta["files"]]
    assert z == sorted(z)  # ascending along the normal, whatever the file names say


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("98892003/MR2", r"files of 3 series are mixed in one folder"),
        ("98892003/MR700", r"oriented .*\(a localiser or a radial series is not a volume\)"),
        ("77654033/CT2", r"slice\(s\) missing between 17106 \(-99\.48 mm\) and 17136"),
    ],
    ids=["mixed-series", "radial-localiser", "missing-slices"],
)
def test_pydicoms_broken_series_are_refused_with_the_reason(tmp_path, case, pattern):
    folder = shutil.copytree(_TESTS / case, tmp_path / "series")
    with pytest.raises(DatasetError, match=pattern):
        read_image_file(folder)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"depths": [0.0, 2.0, 2.0, 4.0]}, r"lie at the same position \(2 mm\)"),
        ({"depths": [0.0, 2.0, 4.0, 9.0]}, r"inconsistent slice spacing: .* 5 mm where .* 2 mm"),
        ({"depths": [0.0, 2.0, 8.0, 10.0]}, r"2 slice\(s\) missing between"),
        (
            {"depths": [0.0, 2.0, 4.0], "spacing": [0.66, 0.66, 0.9]},
            r"spacing \(0\.66, 0\.66\) mm of slice002 differs from \(0\.9, 0\.9\) mm of slice001",
        ),
        (
            {"depths": [0.0, 2.0], "series": ["1.2.3", "1.2.4"]},
            r"files of 2 series are mixed",
        ),
    ],
    ids=["duplicate", "irregular", "gap", "pixel-spacing", "two-series"],
)
def test_malformed_series_are_refused(tmp_path, kwargs, pattern):
    folder = _write_series(tmp_path / "s", **kwargs)
    with pytest.raises(DatasetError, match=pattern):
        read_image_file(folder)


def test_without_positions_the_instance_numbers_order_the_slices(tmp_path):
    folder = _write_series(tmp_path / "s", [3.0, 1.0, 2.0], positions=False)
    img = read_image_file(folder)
    intercept = float(pydicom.dcmread(folder / "slice001").RescaleIntercept)
    assert [float(img.pixels[k].mean()) - intercept for k in range(3)] == [0, 100, 200]


def test_a_stray_file_or_an_empty_folder_is_named(tmp_path):
    folder = _write_series(tmp_path / "s", [0.0, 2.0])
    (folder / "notes.txt").write_text("not a slice")
    with pytest.raises(DatasetError, match=r"notes\.txt: not a DICOM file"):
        read_image_file(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no files"):
        read_image_file(tmp_path / "empty")


def test_frame_and_axis_do_not_apply_to_a_series(tmp_path):
    folder = _write_series(tmp_path / "s", [0.0, 2.0])
    with pytest.raises(ConfigError, match="DICOM series folder"):
        read_image_file(folder, frame=0)


def test_the_pixel_budget_is_checked_before_decoding(tmp_path, monkeypatch):
    folder = _write_series(tmp_path / "s", [0.0, 2.0, 4.0])
    monkeypatch.setenv("MEDGYM_MAX_PIXELS", str(2 * 128 * 128))
    from medgym.settings import reload_settings

    reload_settings()
    with pytest.raises(DatasetError, match=r"128x128 x 3 slices"):
        read_image_file(folder)


def test_a_dataset_record_can_name_a_series_folder(tmp_path):
    import json

    import gymnasium as gym

    import medgym  # noqa: F401  (registers the envs)
    from medgym.data import load

    shutil.copytree(_TESTS / "98892001" / "CT5N", tmp_path / "studies" / "ct5n")
    row = {"id": "q1", "image": "studies/ct5n", "question": "Is there a lesion?", "answer": "no"}
    (tmp_path / "test.jsonl").write_text(json.dumps(row) + "\n")
    (sample,) = load("generic", root=tmp_path, split="test")
    assert load_image(sample.images[0]).num_slices == 5
    env = gym.make("MedVQA-Volume-v0", samples=[sample])
    env.reset(seed=0)
    call = '<tool_call>{"name": "scroll", "arguments": {"slice": 4}}</tool_call>'
    obs, _, terminated, _, _ = env.step(call)
    assert not terminated and "slice 4" in obs["text"].lower()


def test_a_series_folder_with_a_stray_file_is_refused_at_load_time(tmp_path):
    import json

    from medgym.data import load

    folder = tmp_path / "studies" / "s"
    folder.mkdir(parents=True)
    (folder / "0001.txt").write_text("not dicom")
    row = {"id": "q1", "image": "studies/s", "question": "Is there a lesion?", "answer": "no"}
    (tmp_path / "test.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match="not an image file"):
        load("generic", root=tmp_path, split="test")
