from __future__ import annotations

import contextlib
import gzip
import io
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nibabel.testing import data_path as nib_data
from PIL import Image
from pydicom.data import get_testdata_file

from medgym.core.images import ImageRef, MedImage, Window
from medgym.data import clear_image_cache, load_image
from medgym.data.io import MAX_PIXELS, max_pixels, read_image_bytes, read_image_file
from medgym.errors import ConfigError, DatasetError
from medgym.settings import reload_settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def dicom(name: str) -> Path:
    """A DICOM test file shipped with pydicom or pydicom-data (never downloaded)."""
    found = get_testdata_file(name, download=False)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install pydicom-data)")
    return Path(found)


def raw_pixels(name: str) -> np.ndarray:
    return pydicom.dcmread(dicom(name)).pixel_array


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def noise(shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR width/height of a PNG and fix the chunk CRC."""
    b = bytearray(data)
    length = struct.unpack(">I", b[8:12])[0]
    b[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(b[12 : 16 + length])) & 0xFFFFFFFF
    b[16 + length : 20 + length] = struct.pack(">I", crc)
    return bytes(b)


# ------------------------------------------------------------------ DICOM (pydicom's own files)


def test_ct_values_are_in_hounsfield_units_with_spacing_and_plane():
    img = read_image_file(dicom("CT_small.dcm"))
    raw = raw_pixels("CT_small.dcm")
    assert img.pixels.shape == (1, 128, 128, 1)
    np.testing.assert_array_equal(img.pixels[0, :, :, 0], raw.astype(np.int32) - 1024)
    assert img.modality == "CT"
    assert img.spacing_mm == pytest.approx((0.661468, 0.661468))
    assert img.meta["plane"] == "axial"
    assert img.meta["format"] == "DICOM"
    assert "PatientName" not in img.meta and "patient_name" not in img.meta


def test_window_comes_from_the_file_when_present():
    img = read_image_file(dicom("MR_small.dcm"))
    assert img.default_window == Window(level=600, width=1600)
    assert img.modality == "MR"


def test_monochrome1_is_inverted_so_high_is_white():
    img = read_image_file(dicom("6278"))  # CR, MONOCHROME1, slope 0.684, intercept 200, 12 bits
    raw = raw_pixels("6278").astype(np.float64)
    k = 4095 * 0.684 + 2 * 200
    np.testing.assert_allclose(img.pixels[0, :, :, 0], k - (raw * 0.684 + 200), rtol=1e-5)
    assert img.default_window.level == pytest.approx(k - 1600)
    assert img.default_window.width == pytest.approx(2800)
    assert img.spacing_mm == pytest.approx((0.1, 0.1))  # from ImagerPixelSpacing
    # the brightest stored value is now the darkest shown value
    assert np.argmax(img.pixels) == np.argmin(raw)


def test_chest_cr_from_pydicom_data_keeps_body_part_and_view():
    img = read_image_file(dicom("RG1_UNCI.dcm"))
    assert img.modality == "CR" and img.meta["photometric"] == "MONOCHROME1"
    assert img.meta["body_part"] == "CHEST" and img.meta["view_position"] == "PA"
    assert img.default_window.level == pytest.approx(2**15 - 1 - 15000)
    assert img.spacing_mm is None  # the file says 0.000: unknown, not zero


def test_multi_frame_becomes_slices_and_frame_picks_one():
    full = read_image_file(dicom("emri_small.dcm"))
    raw = raw_pixels("emri_small.dcm")
    assert full.pixels.shape == (10, 64, 64, 1)
    np.testing.assert_array_equal(full.pixels[..., 0], raw)
    one = read_image_file(dicom("emri_small.dcm"), frame=3)
    assert one.pixels.shape == (1, 64, 64, 1)
    np.testing.assert_array_equal(one.pixels[0], full.pixels[3])
    with pytest.raises(DatasetError, match=r"emri_small\.dcm.*frame 10.*10 frame"):
        read_image_file(dicom("emri_small.dcm"), frame=10)


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb.dcm",
        "SC_rgb_16bit.dcm",
        "OBXXXX1A.dcm",
        "SC_rgb_jpeg.dcm",
        "SC_ybr_full_422_uncompressed.dcm",
    ],
    ids=["rgb8", "rgb16", "palette", "ybr-jpeg", "ybr422"],
)
def test_colour_dicom_becomes_rgb_uint8(name):
    img = read_image_file(dicom(name))
    assert img.is_color and img.pixels.dtype == np.uint8 and img.default_window is None
    ds = pydicom.dcmread(dicom(name))
    assert img.pixels.shape[1:3] == (ds.Rows, ds.Columns)


def test_rgb_dicom_pixels_match_pydicom():
    img = read_image_file(dicom("SC_rgb.dcm"))
    np.testing.assert_array_equal(img.pixels[0], raw_pixels("SC_rgb.dcm"))


def test_compressed_dicom_without_plugin_names_what_to_install():
    from pydicom.pixels.decoders import JPEGLSLosslessDecoder

    if JPEGLSLosslessDecoder.is_available:
        pytest.skip("a JPEG-LS plugin is installed here")
    with pytest.raises(DatasetError, match=r"MR_small_jpeg_ls_lossless\.dcm.*JPEG-LS.*pylibjpeg"):
        read_image_file(dicom("MR_small_jpeg_ls_lossless.dcm"))


def test_dicom_without_pixel_data_is_refused(tmp_path):
    ds = pydicom.dcmread(dicom("CT_small.dcm"))
    del ds.PixelData
    path = tmp_path / "no_pixels.dcm"
    ds.save_as(path)
    with pytest.raises(DatasetError, match=r"no_pixels\.dcm.*no pixel data"):
        read_image_file(path)


def test_truncated_dicom_is_refused():
    with pytest.raises(DatasetError, match=r"MR_truncated\.dcm.*truncated or corrupt"):
        read_image_file(dicom("MR_truncated.dcm"))


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit-vr", "explicit-vr"])
def test_dicom_without_preamble_is_found_by_content(implicit):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(dicom("CT_small.dcm"))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    data = fp.getvalue()
    assert data[128:132] != b"DICM"
    img = read_image_bytes(data, name="raw-dataset")
    np.testing.assert_array_equal(img.pixels, read_image_file(dicom("CT_small.dcm")).pixels)


def test_dicom_bytes_read_like_the_file():
    a = read_image_file(dicom("MR_small.dcm"))
    b = read_image_bytes(dicom("MR_small.dcm").read_bytes(), name="upload.dcm")
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.default_window == b.default_window


def test_dicom_budget_is_checked_before_decoding(monkeypatch):
    monkeypatch.setenv("MEDGYM_MAX_PIXELS", str(64 * 64 * 5))
    reload_settings()
    with pytest.raises(DatasetError, match=r"emri_small\.dcm.*over the limit"):
        read_image_file(dicom("emri_small.dcm"))
    assert read_image_file(dicom("emri_small.dcm"), frame=0).num_slices == 1


# ------------------------------------------------------------------ NIfTI (nibabel's own files)


def expected_axial(path: Path) -> np.ndarray:
    img = nib.load(path)
    if len(img.shape) > 3:
        img = img.slicer[..., 0]
    data = np.asanyarray(nib.as_closest_canonical(img).dataobj)
    return np.stack([data[:, :, k].T[::-1, ::-1] for k in range(data.shape[2])])


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz"])
def test_nifti_axial_slices_in_radiological_convention(name):
    path = Path(nib_data) / name
    img = read_image_file(path)
    np.testing.assert_array_equal(img.pixels[..., 0], expected_axial(path))
    assert img.meta["format"] == "NIfTI" and img.meta["plane"] == "axial"
    assert img.spacing_mm == pytest.approx((2.0, 2.0))
    assert img.default_window is not None


def test_nifti_4d_keeps_the_first_volume():
    img = read_image_file(Path(nib_data) / "example4d.nii.gz")
    assert img.pixels.shape == (24, 96, 128, 1)
    assert img.meta["volumes_in_file"] == 2


def test_nifti_axis_and_frame():
    path = Path(nib_data) / "anatomical.nii"
    sag = read_image_file(path, axis=0)
    assert sag.pixels.shape == (33, 25, 41, 1) and sag.meta["plane"] == "sagittal"
    one = read_image_file(path, axis=0, frame=5)
    np.testing.assert_array_equal(one.pixels[0], sag.pixels[5])
    with pytest.raises(DatasetError, match=r"anatomical\.nii.*slice 33"):
        read_image_file(path, axis=0, frame=33)


def test_nifti_orientation_does_not_change_what_is_shown(tmp_path):
    """The same anatomy stored RAS and LPS (flipped axes) reads to the same slices."""
    data = noise((6, 5, 4), np.int16)
    ras = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    lps = nib.Nifti1Image(data[::-1, ::-1, :].copy(), np.diag([-2.0, -3.0, 4.0, 1.0]))
    nib.save(ras, tmp_path / "ras.nii.gz")
    nib.save(lps, tmp_path / "lps.nii")
    a, b = read_image_file(tmp_path / "ras.nii.gz"), read_image_file(tmp_path / "lps.nii")
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.spacing_mm == pytest.approx((3.0, 2.0))  # rows run along y, columns along x
    assert a.slice_spacing_mm == pytest.approx(4.0)  # axial slices step along z
    sagittal = read_image_file(tmp_path / "ras.nii.gz", axis=0)
    assert sagittal.slice_spacing_mm == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz"])
def test_nifti_bytes_read_like_the_file(name):
    path = Path(nib_data) / name
    from_bytes = read_image_bytes(path.read_bytes(), name="upload")
    np.testing.assert_array_equal(from_bytes.pixels, read_image_file(path).pixels)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_is_refused(tmp_path, suffix):
    src = (Path(nib_data) / "anatomical.nii").read_bytes()
    data = src if suffix == ".nii" else gzip.compress(src)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"cut\{suffix}.*NIfTI"):
        read_image_file(path)


# ------------------------------------------------------------------ Pillow formats (written here)


def test_png_8bit_gray_is_display_ready(tmp_path):
    arr = noise((12, 16))
    (tmp_path / "g.png").write_bytes(png_bytes(arr))
    img = read_image_file(tmp_path / "g.png")
    assert img.pixels.shape == (1, 12, 16, 1) and img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(img.pixels[0, :, :, 0], arr)
    assert img.default_window is None


def test_png_16bit_keeps_its_values(tmp_path):
    arr = noise((12, 16), np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    img = read_image_file(tmp_path / "g16.png")
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels[0, :, :, 0], arr)
    assert img.default_window is not None and img.default_window.width > 255


@pytest.mark.parametrize(
    ("mode", "channels"),
    [("RGB", 3), ("RGBA", 4), ("CMYK", 4)],
    ids=["rgb", "rgba-alpha-dropped", "cmyk"],
)
def test_colour_modes_become_rgb(tmp_path, mode, channels):
    arr = noise((8, 10, channels))
    path = tmp_path / f"c.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.fromarray(arr, mode=mode).save(path, **({"quality": 100} if mode == "CMYK" else {}))
    img = read_image_file(path)
    assert img.pixels.shape == (1, 8, 10, 3) and img.pixels.dtype == np.uint8
    if mode != "CMYK":
        np.testing.assert_array_equal(img.pixels[0], arr[:, :, :3])


def test_palette_png_becomes_rgb(tmp_path):
    im = Image.fromarray(noise((8, 8, 3))).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    im.save(tmp_path / "p.png")
    img = read_image_file(tmp_path / "p.png")
    np.testing.assert_array_equal(img.pixels[0], np.asarray(im.convert("RGB")))


def test_jpeg_and_bmp(tmp_path):
    arr = noise((16, 16, 3))
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(arr).save(tmp_path / "a.bmp")
    jpg, bmp = read_image_file(tmp_path / "a.jpg"), read_image_file(tmp_path / "a.bmp")
    assert jpg.meta["format"] == "JPEG" and jpg.pixels.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(bmp.pixels[0], arr)


def test_multipage_tiff_pages_are_slices(tmp_path):
    pages = [Image.fromarray(noise((6, 9), seed=i)) for i in range(3)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    img = read_image_file(tmp_path / "m.tif")
    assert img.pixels.shape == (3, 6, 9, 1)
    for i, page in enumerate(pages):
        np.testing.assert_array_equal(img.pixels[i, :, :, 0], np.asarray(page))
    np.testing.assert_array_equal(
        read_image_file(tmp_path / "m.tif", frame=2).pixels[0], img.pixels[2]
    )


def test_float_tiff_gets_a_window(tmp_path):
    arr = np.linspace(-1000, 3000, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(arr).save(tmp_path / "f.tif")
    img = read_image_file(tmp_path / "f.tif")
    assert img.pixels.dtype == np.float32
    np.testing.assert_allclose(img.pixels[0, :, :, 0], arr)
    assert img.default_window.low < -900 and img.default_window.high > 2900


def test_skimage_bundled_images_including_a_tiff_pillow_cannot_read():
    skimage = pytest.importorskip("skimage")
    folder = Path(skimage.__file__).parent / "data"
    assert read_image_file(folder / "camera.png").pixels.shape == (1, 512, 512, 1)
    rgb = read_image_file(folder / "multipage_rgb.tif")  # planar float RGB, via tifffile
    assert rgb.pixels.shape == (2, 10, 10, 3) and rgb.pixels.dtype == np.uint8


# ------------------------------------------------------------------ bad inputs


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.png does not exist"):
        read_image_file(tmp_path / "nope.png")


def test_a_folder_of_non_dicom_files_is_not_an_image(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(DatasetError, match=r"a\.txt: not a DICOM file"):
        read_image_file(tmp_path)


def test_truncated_png_names_the_file(tmp_path):
    data = png_bytes(noise((64, 64, 3)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.png.*(truncated|corrupt)"):
        read_image_file(path)


@pytest.mark.parametrize(
    "data",
    [b"hello, not an image", bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n" + b"\0" * 8],
    ids=["text", "byte-ramp", "png-signature-only"],
)
def test_non_image_bytes_are_refused(data):
    with pytest.raises(DatasetError, match=r"junk\.bin.*expected an image"):
        read_image_bytes(data, name="junk.bin")


def test_empty_bytes_are_refused():
    with pytest.raises(DatasetError, match="no bytes"):
        read_image_bytes(b"", name="empty")


@pytest.mark.parametrize("size", [(30000, 30000), (20000, 15000)], ids=["30k-square", "300M"])
def test_png_claiming_huge_size_is_refused_before_decoding(tmp_path, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(patch_png_size(png_bytes(noise((4, 4))), *size))
    with pytest.raises(DatasetError, match=r"bomb\.png.*(limit|decompression)"):
        read_image_file(path)


def test_pixel_limit_from_environment(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(png_bytes(noise((16, 16))))
    monkeypatch.setenv("MEDGYM_MAX_PIXELS", "100")
    reload_settings()
    assert max_pixels() == 100
    with pytest.raises(DatasetError, match=r"a\.png.*16x16.*over the limit of 100"):
        read_image_file(tmp_path / "a.png")
    monkeypatch.setenv("MEDGYM_MAX_PIXELS", "256")
    reload_settings()
    assert read_image_file(tmp_path / "a.png").size == (16, 16)
    monkeypatch.delenv("MEDGYM_MAX_PIXELS")
    reload_settings()
    assert max_pixels() == MAX_PIXELS == 2**28


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_bad_pixel_limit_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("MEDGYM_MAX_PIXELS", value)
    with pytest.raises(ConfigError, match="MEDGYM_MAX_PIXELS"):
        max_pixels()


@pytest.mark.parametrize(
    "kwargs",
    [{"frame": -1}, {"frame": 1.5}, {"axis": 3}],
    ids=["neg-frame", "float-frame", "axis3"],
)
def test_bad_arguments_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        read_image_bytes(b"x", **kwargs)


def test_frame_beyond_a_single_image(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(noise((4, 4))))
    with pytest.raises(DatasetError, match=r"a\.png.*frame 1 requested.*1 frame"):
        read_image_file(tmp_path / "a.png", frame=1)


_SEEDS = {
    "png": png_bytes(noise((8, 8, 3))),
    "tiff": png_bytes(noise((8, 8)), fmt="TIFF"),
    "dicom": Path(get_testdata_file("MR_small.dcm", download=False)).read_bytes(),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(_SEEDS)),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
)
def test_damaged_files_decode_or_raise_dataset_error(kind, cut, flips):
    data = bytearray(_SEEDS[kind])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(1, int(cut * len(data)))])
    try:
        img = read_image_bytes(data, name=f"fuzz.{kind}")
    except DatasetError:
        return
    assert isinstance(img, MedImage)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_or_raise_dataset_error(data):
    with contextlib.suppress(DatasetError):
        read_image_bytes(data, name="any")


def test_cache_reads_files_through_this_module(tmp_path):
    clear_image_cache()
    (tmp_path / "a.png").write_bytes(png_bytes(noise((5, 7))))
    img = load_image(ImageRef(uri=f"file://{tmp_path / 'a.png'}"))
    assert img.size == (7, 5)
    emri = load_image(ImageRef(uri=str(dicom("emri_small.dcm")), frame=2))
    assert emri.num_slices == 1


def test_float_nifti_with_nan_voxels_renders(tmp_path):
    data = np.linspace(0, 100, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    data[0, 0, :] = np.nan
    data[1, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "stat.nii.gz")
    img = read_image_file(tmp_path / "stat.nii.gz")
    assert np.isfinite(img.pixels).all() and img.pixels.dtype == np.float32
    assert img.default_window.high <= 100.5


def test_two_dimensional_nifti_is_one_slice(tmp_path):
    data = noise((6, 4), np.uint16)
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.25, 1.0, 1.0])), tmp_path / "flat.nii")
    img = read_image_file(tmp_path / "flat.nii")
    assert img.pixels.shape == (1, 4, 6, 1)
    np.testing.assert_array_equal(img.pixels[0, :, :, 0], data.T[::-1, ::-1])
    assert img.spacing_mm == pytest.approx((0.25, 0.5))


def test_decoded_bytes_budget_refuses_before_decoding(tmp_path, monkeypatch):
    """Issue 18 D3: a small PNG that decodes to a large colour image is refused by bytes."""
    from medgym.data.readers.common import PixelBudgetError

    Image.new("RGB", (300, 300), (10, 20, 30)).save(tmp_path / "c.png")
    monkeypatch.setenv("MEDGYM_MAX_IMAGE_BYTES", str(300 * 300 * 3 - 1))
    reload_settings()
    with pytest.raises(PixelBudgetError, match="MEDGYM_MAX_IMAGE_BYTES"):
        read_image_file(tmp_path / "c.png")
    monkeypatch.setenv("MEDGYM_MAX_IMAGE_BYTES", str(300 * 300 * 3))
    reload_settings()
    assert read_image_file(tmp_path / "c.png").width == 300
