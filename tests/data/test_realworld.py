from __future__ import annotations

import logging
import socket

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medgym.core.images import ImageRef
from medgym.data import clear_image_cache, load, load_image
from medgym.data import realworld as realworld_module
from medgym.data.realworld import load_realworld, package_path, resolve_pkg
from medgym.data.realworld_catalog import plane_of_orientation
from medgym.errors import ConfigError, DatasetError, DependencyNotInstalled

MODALITY_NAMES = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-ray",
    "US": "ultrasound",
    "NM": "nuclear medicine",
}


@pytest.fixture(scope="module")
def samples():
    return load("realworld")


def _path(s):
    return package_path(s.meta["package"], s.meta["file"])


def test_loads_through_the_wrapper_with_unique_ids(samples):
    assert len(samples) >= 40
    assert len({s.id for s in samples}) == len(samples)
    assert {s.source for s in samples} == {"realworld"}
    families = {s.question_type for s in samples}
    assert {"modality", "body_part", "plane", "view", "color"} <= families
    assert {"presence", "count", "shape", "side", "kind"} <= families
    for s in samples:
        assert s.answer in s.options
        assert s.images[0].uri.startswith("pkg://")


def test_every_image_loads(samples):
    for s in samples:
        image = load_image(s.images[0])
        assert image.width >= 1 and image.height >= 1
    clear_image_cache()


def test_dicom_tag_answers_match_the_tags(samples):
    checked = 0
    for s in samples:
        if s.meta["package"] not in ("pydicom", "pydicom-data") or "tag" not in s.meta:
            continue
        ds = pydicom.dcmread(_path(s), stop_before_pixels=True)
        if s.question_type == "modality":
            assert s.answer == MODALITY_NAMES[ds.Modality]
        elif s.question_type == "body_part":
            assert s.answer == ds.BodyPartExamined.lower()
        elif s.question_type == "view":
            assert s.answer == ds.ViewPosition
        elif s.question_type == "plane":
            assert s.answer == plane_of_orientation(ds.ImageOrientationPatient)
            assert load_image(s.images[0]).meta.get("plane") == s.answer
        elif s.question_type == "color":
            assert (s.answer == "color") == load_image(s.images[0]).is_color
        checked += 1
    assert checked >= 25


def test_nifti_planes_follow_the_slicing_axis(samples):
    planes = [s for s in samples if s.meta["package"] == "nibabel" and s.question_type == "plane"]
    assert {s.answer for s in planes} == {"axial", "coronal", "sagittal"}
    for s in planes:
        ref = s.images[0]
        image = load_image(ref)
        canonical = nib.as_closest_canonical(nib.load(_path(s))).shape
        assert image.num_slices == canonical[ref.axis]
        assert image.meta["plane"] == s.answer


def test_non_dicom_colour_answers_match_the_pixels(samples):
    for s in samples:
        if s.question_type == "color" and s.meta["package"] in ("skimage", "nibabel"):
            assert (s.answer == "color") == load_image(s.images[0]).is_color


def test_zoom_questions_have_findings_inside_the_image(samples):
    zoom = [s for s in samples if "query" in s.meta]
    assert {s.meta["file"] for s in zoom} == {"RG1_UNCR.dcm", "RG3_UNCR.dcm", "retina"}
    for s in zoom:
        image = load_image(s.images[0])
        assert "?f=" in s.images[0].uri
        boxes = [f["bbox_px"] for f in s.meta["findings"]] + [e.bbox_px for e in s.evidence]
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height
    clear_image_cache()


def test_findings_change_the_real_image_only_inside_their_boxes(samples):
    s = next(x for x in samples if "query" in x.meta and x.meta["file"] == "retina")
    with_findings = resolve_pkg(s.images[0]).pixels[0].astype(int)
    bare = resolve_pkg(ImageRef(uri="pkg://skimage/retina")).pixels[0].astype(int)
    diff = np.abs(with_findings - bare).max(axis=2)
    inside = np.zeros(diff.shape, dtype=bool)
    for f in s.meta["findings"]:
        x1, y1, x2, y2 = (int(v) for v in f["bbox_px"])
        inside[y1:y2, x1:x2] = True
    assert diff[~inside].max() == 0
    assert diff[inside].max() > 0


def test_same_seed_same_samples_and_pixels():
    a, b = load_realworld(seed=1), load_realworld(seed=1)
    assert a == b
    zoom = [s for s in a if "query" in s.meta][:3]
    for s in zoom:
        clear_image_cache()
        first = load_image(s.images[0]).pixels.copy()
        clear_image_cache()
        np.testing.assert_array_equal(first, load_image(s.images[0]).pixels)


def test_seed_and_split_change_only_the_zoom_questions():
    base = load_realworld(seed=0)
    for other in (load_realworld(seed=1), load_realworld(split="train")):
        tags = [s for s in base if "tag" in s.meta]
        assert tags == [s for s in other if "tag" in s.meta]
        zoom_uris = {s.images[0].uri for s in base if "query" in s.meta}
        assert zoom_uris.isdisjoint({s.images[0].uri for s in other if "query" in s.meta})


def test_missing_optional_file_is_skipped_with_a_warning(monkeypatch, caplog):
    real = realworld_module.package_path

    def without_data(package, name):
        return None if package == "pydicom-data" else real(package, name)

    monkeypatch.setattr(realworld_module, "package_path", without_data)
    with caplog.at_level(logging.WARNING, logger="medgym.data.realworld"):
        samples = load_realworld()
    assert samples
    assert all(s.meta["package"] != "pydicom-data" for s in samples)
    assert "RG1_UNCR.dcm" in caplog.text


@pytest.mark.parametrize("module", ["pydicom", "skimage", "nibabel"])
def test_missing_reader_raises_dependency_not_installed(monkeypatch, module):
    real_import = realworld_module.importlib.import_module

    def fake_import(name, *args):
        if name == module:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(realworld_module.importlib, "import_module", fake_import)
    with pytest.raises(DependencyNotInstalled, match=r"medgym\[data\]"):
        load_realworld()


def test_skimage_images_load_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    realworld_module._skimage_array.cache_clear()
    for name in ("retina", "immunohistochemistry", "cell", "shepp_logan_phantom"):
        image = resolve_pkg(ImageRef(uri=f"pkg://skimage/{name}"))
        assert image.width > 100


@pytest.mark.parametrize(
    "uri",
    [
        "pkg://pydicom/",
        "pkg://pypi/CT_small.dcm",
        "pkg://pydicom/not_there.dcm",
        "pkg://pydicom/CT_small.dcm?colour=red",
        "pkg://pydicom/CT_small.dcm?f=nodule:round",
        "pkg://skimage/astronaut_in_space",
        "pkg://skimage/download_all",
        "pkg://skimage/lbp_frontal_face_cascade_filename",
        "file://pydicom/CT_small.dcm",
    ],
    ids=[
        "no-name",
        "unknown-package",
        "missing-file",
        "unknown-field",
        "bad-finding",
        "unknown-skimage",
        "skimage-download-all",  # issue 18 D7: any skimage.data attribute was called
        "skimage-not-an-image",
        "wrong-scheme",
    ],
)
def test_bad_pkg_uris_raise_dataset_error(uri):
    with pytest.raises(DatasetError):
        resolve_pkg(ImageRef(uri=uri))


def test_pkg_finding_overlay_is_regenerated_from_the_ref_alone():
    uri = "pkg://pydicom/CT_small.dcm?f=nodule:round:1:64:64:40:0:80:3"
    a = resolve_pkg(ImageRef(uri=uri)).pixels
    b = resolve_pkg(ImageRef(uri=uri)).pixels
    bare = resolve_pkg(ImageRef(uri="pkg://pydicom/CT_small.dcm")).pixels
    np.testing.assert_array_equal(a, b)
    assert (a != bare).any()
    assert a.dtype == bare.dtype


def test_unknown_package_and_split_raise_config_error():
    with pytest.raises(ConfigError, match="did you mean `pydicom`"):
        package_path("pydicomm", "CT_small.dcm")
    with pytest.raises(ConfigError, match="did you mean `test`"):
        load_realworld(split="tset")


@pytest.mark.parametrize(
    ("iop", "plane"),
    [
        ([1, 0, 0, 0, 1, 0], "axial"),
        ([1, 0, 0, 0, 0, -1], "coronal"),
        ([0, 1, 0, 0, 0, -1], "sagittal"),
        ([0.569, 0.822, 0, 0, 0, -1], None),
        ([1, 0, 0], None),
        (["a", 0, 0, 0, 1, 0], None),
        ([0, 0, 0, 0, 0, 0], None),
    ],
    ids=["axial", "coronal", "sagittal", "oblique", "short", "text", "zero"],
)
def test_plane_of_orientation(iop, plane):
    assert plane_of_orientation(iop) == plane
