"""The images of the ``realworld`` dataset and the facts their questions are built from.

Each :class:`Entry` names a file shipped in an installed package; :func:`read_facts` reads what
the data says about itself (DICOM tags, the slicing axis of a NIfTI volume, the shape of an
array) and :meth:`Facts.questions` turns those facts into closed questions. Sources and licences
are listed per file in ``docs/bundled_data.md``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from medgym.core.images import ImageRef, MedImage
from medgym.errors import DatasetError

__all__ = ["CATALOG", "Entry", "Facts", "plane_of_orientation", "read_facts"]

_MIT_PYDICOM = "pydicom test file (pydicom: MIT)"
_MIT_DATA = "pydicom-data (MIT)"
_NEMA = "; image from the NEMA WG04 sample datasets"


@dataclass(frozen=True)
class Entry:
    """One image of the catalog.

    Attributes:
        package: ``pydicom``, ``pydicom-data``, ``skimage`` or ``nibabel``.
        name: File name, or the ``skimage.data`` function name.
        licence: Source and licence, in a few words (full notes in the docs).
        axes: NIfTI: the canonical axes to slice along (one image each); ``(None,)`` otherwise.
        zoom: Whether zoom questions with placed findings are asked on it.
        modality: Modality answer for files without a Modality tag.
        sample_modality: ``Sample.modality`` for files without a Modality tag.
        body_part: ``Sample.body_part`` when no BodyPartExamined tag says it.
    """

    package: str
    name: str
    licence: str
    axes: tuple[int | None, ...] = (None,)
    zoom: bool = False
    modality: str | None = None
    sample_modality: str | None = None
    body_part: str | None = None

    @property
    def key(self) -> int:
        """A stable number for this entry (seeds its zoom questions)."""
        return zlib.crc32(f"{self.package}/{self.name}".encode())


CATALOG: tuple[Entry, ...] = (
    Entry("pydicom", "CT_small.dcm", _MIT_PYDICOM + _NEMA),
    Entry("pydicom", "MR_small.dcm", _MIT_PYDICOM + _NEMA),
    Entry("pydicom-data", "RG1_UNCR.dcm", _MIT_DATA + _NEMA, zoom=True),
    Entry("pydicom-data", "RG3_UNCR.dcm", _MIT_DATA + _NEMA, zoom=True),
    Entry("pydicom-data", "MR2_UNCR.dcm", _MIT_DATA + _NEMA, body_part="shoulder"),
    Entry("pydicom-data", "US1_UNCR.dcm", _MIT_DATA + _NEMA),
    Entry("pydicom-data", "693_UNCR.dcm", _MIT_DATA + "; pydicom issue #693 regression data"),
    Entry("pydicom-data", "MR-SIEMENS-DICOM-WithOverlays.dcm", _MIT_DATA + "; from GDCM (BSD)"),
    Entry("pydicom-data", "emri_small.dcm", _MIT_DATA),
    Entry("pydicom-data", "JPEG2000_UNC.dcm", _MIT_DATA + _NEMA),
    Entry("pydicom-data", "OBXXXX1A.dcm", _MIT_DATA + "; from pydicom issue #205"),
    Entry(
        "skimage",
        "retina",
        "scikit-image data; Wikimedia Commons, CC0",
        zoom=True,
        modality="fundus photography",
        sample_modality="Fundus",
        body_part="eye",
    ),
    Entry(
        "skimage",
        "immunohistochemistry",
        "scikit-image data; no known copyright restrictions",
        modality="histopathology",
        sample_modality="Pathology",
        body_part="colon",
    ),
    Entry(
        "skimage",
        "cell",
        "scikit-image data; CC0",
        modality="microscopy",
        sample_modality="Microscopy",
        body_part="cell",
    ),
    Entry(
        "skimage",
        "shepp_logan_phantom",
        "scikit-image data; a mathematical phantom",
        sample_modality="Phantom",
        body_part="head",
    ),
    Entry(
        "nibabel",
        "anatomical.nii",
        "nibabel test data (MIT)",
        axes=(0, 1, 2),
        modality="MRI",
        sample_modality="MRI",
        body_part="brain",
    ),
    Entry(
        "nibabel",
        "example4d.nii.gz",
        "nibabel test data (MIT)",
        axes=(0, 1, 2),
        modality="MRI",
        sample_modality="MRI",
        body_part="brain",
    ),
)

_MODALITY_NAMES = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-ray",
    "DX": "X-ray",
    "US": "ultrasound",
    "NM": "nuclear medicine",
    "PT": "PET",
}
_SAMPLE_MODALITY = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-Ray",
    "DX": "X-Ray",
    "US": "Ultrasound",
    "NM": "Nuclear Medicine",
    "PT": "PET",
}
_MODALITY_POOL = (
    "CT",
    "MRI",
    "X-ray",
    "ultrasound",
    "nuclear medicine",
    "fundus photography",
    "histopathology",
    "microscopy",
)
_BODY_PARTS = ("chest", "abdomen", "head", "extremity", "whole body", "pelvis", "spine")
_COLOR_PHOTOMETRIC = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
_PLANES = ("sagittal", "coronal", "axial")


def plane_of_orientation(iop: object, *, min_cosine: float = 0.9) -> str | None:
    """The plane of a DICOM ``ImageOrientationPatient``, or ``None`` when oblique.

    The slice normal (row x column direction cosines) along the patient's x (left-right) is
    sagittal, along y (front-back) coronal, along z (head-foot) axial.

    Example:
        >>> plane_of_orientation([1, 0, 0, 0, 1, 0])
        'axial'
    """
    try:
        values = np.asarray([float(v) for v in iop], dtype=np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if values.shape != (6,) or not np.isfinite(values).all():
        return None
    normal = np.cross(values[:3], values[3:])
    norm = float(np.linalg.norm(normal))
    if norm == 0:
        return None
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    return _PLANES[axis] if normal[axis] >= min_cosine else None


@dataclass
class Facts:
    """What an image says about itself, and the questions that follow from it."""

    name: str
    sample_modality: str | None
    body_part: str | None
    modality: str | None = None
    body_part_tag: str | None = None
    plane: str | None = None
    view_position: str | None = None
    is_color: bool = False
    width: int = 0
    height: int = 0
    raw: dict[str, object] = field(default_factory=dict)

    def _options(self, answer: str, pool: tuple[str, ...], k: int = 4) -> tuple[str, ...]:
        rng = np.random.default_rng(zlib.crc32(f"{self.name}/{answer}".encode()))
        others = [p for p in pool if p != answer]
        chosen = [others[i] for i in rng.permutation(len(others))[: k - 1]] + [answer]
        return tuple(chosen[i] for i in rng.permutation(len(chosen)))

    def questions(self) -> list[tuple[str, str, str, tuple[str, ...], str]]:
        """``(family, question, answer, options, tag)`` for every fact that is known."""
        out = []
        if self.modality is not None:
            out.append(
                (
                    "modality",
                    "Which imaging modality produced this image?",
                    self.modality,
                    self._options(self.modality, _MODALITY_POOL),
                    "Modality",
                )
            )
        if self.body_part_tag is not None:
            out.append(
                (
                    "body_part",
                    "Which body part was examined in this image?",
                    self.body_part_tag,
                    self._options(self.body_part_tag, _BODY_PARTS),
                    "BodyPartExamined",
                )
            )
        if self.plane is not None:
            out.append(
                (
                    "plane",
                    "In which anatomical plane is this image: axial, coronal or sagittal?",
                    self.plane,
                    ("axial", "coronal", "sagittal"),
                    "ImageOrientationPatient",
                )
            )
        if self.view_position is not None:
            out.append(
                (
                    "view",
                    "Is this radiograph a PA or an AP projection?",
                    self.view_position,
                    ("PA", "AP"),
                    "ViewPosition",
                )
            )
        out.append(
            (
                "color",
                "Is this image in color or grayscale?",
                "color" if self.is_color else "grayscale",
                ("color", "grayscale"),
                "PhotometricInterpretation",
            )
        )
        return out


BaseLoader = Callable[[str, str, ImageRef], MedImage]


def read_facts(entry: Entry, axis: int | None, base_image: BaseLoader) -> Facts:
    """Read the facts of ``entry`` (sliced along ``axis`` for NIfTI).

    Args:
        entry: The catalog entry.
        axis: NIfTI slicing axis, else ``None``.
        base_image: Loads the image of a package file (used for scikit-image arrays).

    Raises:
        DatasetError: The file is not installed or cannot be read.
    """
    facts = Facts(entry.name, entry.sample_modality, entry.body_part, modality=entry.modality)
    if entry.package in ("pydicom", "pydicom-data"):
        _dicom_facts(entry, facts)
    elif entry.package == "nibabel":
        _nifti_facts(entry, axis, facts)
    else:
        image = base_image(entry.package, entry.name, ImageRef(uri=f"pkg://skimage/{entry.name}"))
        facts.is_color, facts.width, facts.height = image.is_color, image.width, image.height
        facts.raw["PhotometricInterpretation"] = "RGB" if image.is_color else "MONOCHROME"
    return facts


def _dicom_facts(entry: Entry, facts: Facts) -> None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medgym.data.realworld import package_path

    path = package_path(entry.package, entry.name)
    if path is None:
        raise DatasetError(f"{entry.package}/{entry.name} is not installed")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError) as e:
        raise DatasetError(f"cannot read DICOM tags of {path}: {e}") from e
    tags = (
        "Modality",
        "BodyPartExamined",
        "ViewPosition",
        "ImageOrientationPatient",
        "PhotometricInterpretation",
        "SamplesPerPixel",
        "Rows",
        "Columns",
    )
    for tag in tags:
        value = ds.get(tag)
        if value is not None and value != "":
            facts.raw[tag] = list(value) if tag == "ImageOrientationPatient" else str(value)
    code = str(facts.raw.get("Modality", ""))
    if code in _MODALITY_NAMES:
        facts.modality = _MODALITY_NAMES[code]
        facts.sample_modality = _SAMPLE_MODALITY[code]
    part = str(facts.raw.get("BodyPartExamined", "")).strip().lower()
    if part:
        facts.body_part_tag = part
        facts.body_part = part
    if "ImageOrientationPatient" in facts.raw:
        facts.plane = plane_of_orientation(facts.raw["ImageOrientationPatient"])
    view = str(facts.raw.get("ViewPosition", "")).strip().upper()
    if view in ("PA", "AP"):
        facts.view_position = view
    photometric = str(facts.raw.get("PhotometricInterpretation", ""))
    facts.is_color = photometric in _COLOR_PHOTOMETRIC
    facts.width, facts.height = int(ds.get("Columns", 0)), int(ds.get("Rows", 0))


def _nifti_facts(entry: Entry, axis: int | None, facts: Facts) -> None:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    from medgym.data.realworld import package_path

    path = package_path(entry.package, entry.name)
    if path is None:
        raise DatasetError(f"{entry.package}/{entry.name} is not installed")
    try:
        img = cast("nib.Nifti1Image", nib.load(path))
    except (ImageFileError, OSError) as e:
        raise DatasetError(f"cannot read NIfTI header of {path}: {e}") from e
    axis = 2 if axis is None else axis
    facts.plane = _PLANES[axis]
    facts.raw["ImageOrientationPatient"] = "".join(nib.aff2axcodes(img.affine))
    facts.raw["axis"] = axis
    facts.raw["PhotometricInterpretation"] = "MONOCHROME"
    shape = nib.as_closest_canonical(img).shape[:3]
    others = [shape[i] for i in range(3) if i != axis]
    facts.width, facts.height = int(others[0]), int(others[1])
