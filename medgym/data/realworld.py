"""The ``realworld`` dataset: real medical images shipped inside installed Python packages.

Images come from pydicom's test files, the ``pydicom-data`` package, scikit-image's bundled data
and nibabel's test data (see ``docs/bundled_data.md`` for each file's source and licence); nothing
is downloaded. Two kinds of questions:

- *Tag questions*, answered by the data itself: modality (DICOM ``Modality``), body part
  (``BodyPartExamined``), plane (``ImageOrientationPatient``, or the slicing axis of a NIfTI
  volume), projection (``ViewPosition``) and colour vs grayscale (``PhotometricInterpretation``
  or the array's shape). They are the same in every split.
- *Zoom questions* on the large images (the chest and leg radiographs, the fundus photograph):
  small synthetic findings (:mod:`medgym.data.synthetic_findings`) are placed at known boxes on
  the real image, with the question families of :mod:`medgym.data.synthetic_questions`. The
  findings travel in the image URI (``pkg://pydicom-data/RG1_UNCR.dcm?f=...``) and
  :func:`resolve_pkg` draws them onto the real pixels, so any worker can rebuild the image from
  the reference alone. Their placement depends on ``seed`` and ``split``.

Example:
    >>> from medgym.data import load, load_image
    >>> s = next(x for x in load("realworld") if x.question_type == "modality")
    >>> load_image(s.images[0]).num_slices >= 1
    True
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from medgym.core.bbox import BBox
from medgym.core.images import ImageRef, MedImage, Window
from medgym.core.sample import Evidence, Sample
from medgym.core.view import full_view, render
from medgym.data.realworld_catalog import CATALOG, Entry, Facts, read_facts
from medgym.data.synthetic_findings import FindingSpec, draw_findings
from medgym.data.synthetic_questions import (
    DEFAULT_FAMILIES,
    FAMILY_OPTIONS,
    Difficulty,
    build_question,
)
from medgym.errors import ConfigError, DatasetError, DependencyNotInstalled, did_you_mean

__all__ = ["load_realworld", "package_path", "resolve_pkg"]

logger = logging.getLogger(__name__)

_SPLITS = {"train": 0, "validate": 1, "val": 1, "validation": 1, "test": 2}
_MODULES = {"pydicom": "pydicom", "skimage": "skimage", "nibabel": "nibabel"}
_AMP_OF_WINDOW = 0.07  # finding texture amplitude, as a share of the display window width


def _require(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise DependencyNotInstalled.for_extra(module, "data") from e


def package_path(package: str, name: str) -> Path | None:
    """Path of file ``name`` shipped in ``package`` (``None`` when it is not installed there).

    Args:
        package: ``pydicom`` (its test files), ``pydicom-data`` or ``nibabel`` (its test data).
        name: File name inside the package's data folder.

    Raises:
        ConfigError: Unknown package.
        DependencyNotInstalled: pydicom or nibabel is missing.
    """
    if package == "pydicom":
        _require("pydicom")
        import pydicom.data

        folder = Path(pydicom.data.__file__).parent / "test_files"
    elif package == "pydicom-data":
        try:
            import data_store  # the import name of the pydicom-data distribution
        except ImportError:
            return None
        folder = Path(data_store.__file__).parent / "data"
    elif package == "nibabel":
        _require("nibabel")
        import nibabel

        # Not `nibabel.testing.data_path`: that module imports pytest, absent outside dev installs.
        folder = Path(nibabel.__file__).parent / "tests" / "data"
    else:
        known = ("pydicom", "pydicom-data", "nibabel", "skimage")
        raise ConfigError(f"unknown package `{package}`{did_you_mean(package, known)}")
    path = folder / name
    return path if path.is_file() else None


SKIMAGE_IMAGES = (
    "retina", "immunohistochemistry", "cell", "shepp_logan_phantom", "microaneurysms",
    "camera", "coins", "moon",
)  # fmt: skip
"""``skimage.data`` images that ``pkg://skimage/<name>`` may name (functions without
arguments that return a picture); nothing else of the module is reachable from a URI."""


@cache
def _skimage_array(name: str) -> np.ndarray:
    _require("skimage")
    import skimage.data

    if name not in SKIMAGE_IMAGES:  # any other attribute (``download_all``...) is refused
        raise DatasetError(
            f"skimage.data has no served image `{name}`{did_you_mean(name, SKIMAGE_IMAGES)}; "
            f"served: {', '.join(SKIMAGE_IMAGES)}"
        )
    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise DatasetError(f"skimage.data has no image `{name}`")
    try:
        array = np.asarray(loader())
    except (OSError, ModuleNotFoundError, ValueError) as e:  # pooch fetches need the network
        raise DatasetError(f"skimage.data.{name}() is not available offline: {e}") from e
    array.setflags(write=False)
    return array


def _base_image(package: str, name: str, ref: ImageRef) -> MedImage:
    if package == "skimage":
        array = _skimage_array(name)
        if array.dtype == np.uint8:
            return MedImage.from_array(array, modality=_SKIMAGE_CODES.get(name))
        pixels = array.astype(np.float32)
        lo, hi = float(pixels.min()), float(pixels.max())
        window = Window(level=(lo + hi) / 2, width=max(hi - lo, 1e-6))
        return MedImage.from_array(pixels, default_window=window, modality=_SKIMAGE_CODES.get(name))
    path = package_path(package, name)
    if path is None:
        raise DatasetError(f"pkg://{package}/{name}: the file is not installed")
    from medgym.data.io import read_image_file

    return read_image_file(path, frame=ref.frame, axis=ref.axis)


_SKIMAGE_CODES = {"retina": "OP", "immunohistochemistry": "SM", "cell": "microscopy"}


def resolve_pkg(ref: ImageRef) -> MedImage:
    """Load a ``pkg://<package>/<name>[?f=<finding>&f=...]`` reference (the ``pkg`` resolver).

    ``package`` is ``pydicom``, ``pydicom-data``, ``nibabel`` (a file name) or ``skimage`` (the
    name of a ``skimage.data`` function). Each ``f`` is a finding token
    (:meth:`~medgym.data.synthetic_findings.FindingSpec.to_token`) drawn onto the image.

    Raises:
        DatasetError: Malformed URI, unknown package, missing file or bad finding token.
        DependencyNotInstalled: The package's reader is not installed.
    """
    package, name, findings = _parse_pkg_uri(ref.uri)
    image = _base_image(package, name, ref)
    if not findings:
        return image
    pixels = image.pixels.astype(np.float32)
    for s in range(pixels.shape[0]):
        draw_findings(pixels[s], findings)
    dtype = image.pixels.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.clip(pixels, info.min, info.max, out=pixels)
        pixels = np.rint(pixels)
    return MedImage(
        pixels=pixels.astype(dtype),
        spacing_mm=image.spacing_mm,
        default_window=image.default_window,
        modality=image.modality,
        meta={**image.meta, "findings": len(findings)},
    )


def _parse_pkg_uri(uri: str) -> tuple[str, str, tuple[FindingSpec, ...]]:
    parts = urlsplit(uri)
    name = parts.path.lstrip("/")
    if parts.scheme != "pkg" or not parts.netloc or not name:
        raise DatasetError(f"expected pkg://<package>/<name>; got {uri!r}")
    known = ("pydicom", "pydicom-data", "nibabel", "skimage")
    if parts.netloc not in known:
        raise DatasetError(
            f"unknown package `{parts.netloc}` in {uri!r}{did_you_mean(parts.netloc, known)}; "
            f"known: {', '.join(known)}"
        )
    tokens = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "f":
            raise DatasetError(f"unknown field `{key}` in {uri!r}; expected only f=<finding>")
        tokens.append(value)
    try:
        findings = tuple(FindingSpec.from_token(t) for t in tokens)
    except ConfigError as e:
        raise DatasetError(f"bad finding in {uri!r}: {e}") from e
    return parts.netloc, name, findings


def _uri(entry: Entry, findings: tuple[FindingSpec, ...] = ()) -> str:
    base = f"pkg://{entry.package}/{entry.name}"
    if not findings:
        return base
    return base + "?" + "&".join(f"f={f.to_token()}" for f in findings)


def _display_mask(image: MedImage, side: int = 256) -> tuple[np.ndarray, float]:
    """Where the default display is neither black nor white, on a small grid; and its scale."""
    scale = side / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    gray = render(image, full_view(image, size)).mean(axis=2)
    mask = (gray > 14) & (gray < 241)
    mask = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return mask, scale


def _allowed_fn(mask: np.ndarray, scale: float) -> Callable[[BBox], bool]:
    def allowed(box: BBox) -> bool:
        x1, y1 = int(box[0] * scale), int(box[1] * scale)
        x2, y2 = int(np.ceil(box[2] * scale)), int(np.ceil(box[3] * scale))
        part = mask[max(y1, 0) : y2, max(x1, 0) : x2]
        return part.size > 0 and bool(part.all())

    return allowed


def load_realworld(
    split: str = "test",
    seed: int = 0,
    difficulty: str | float = "medium",
    zoom_per_image: int = 5,
    num_samples: int | None = None,
) -> list[Sample]:
    """Questions about real images found in installed packages.

    A missing optional file (e.g. ``pydicom-data`` not installed) is skipped with a warning.

    Args:
        split: ``train``, ``validate`` or ``test``: changes the zoom questions only.
        seed: Seed of the zoom questions.
        difficulty: Finding size and number of extra findings (as in ``synthetic``).
        zoom_per_image: Zoom questions per large image.
        num_samples: Keep at most this many samples.

    Raises:
        ConfigError: Unknown split or bad knob.
        DependencyNotInstalled: pydicom, scikit-image or nibabel is not installed.
    """
    if split not in _SPLITS:
        raise ConfigError(f"unknown split `{split}`{did_you_mean(split, _SPLITS)}")
    if zoom_per_image < 0 or seed < 0:
        raise ConfigError(f"zoom_per_image and seed must be >= 0; got {zoom_per_image}, {seed}")
    for module in _MODULES.values():
        _require(module)
    level = Difficulty.parse(difficulty)
    samples: list[Sample] = []
    for entry in CATALOG:
        for axis in entry.axes:
            try:
                facts = read_facts(entry, axis, _base_image)
            except DatasetError as e:
                logger.warning("realworld: skipping %s/%s: %s", entry.package, entry.name, e)
                continue
            ref = ImageRef(uri=_uri(entry), axis=axis)  # type: ignore[arg-type]
            # Slices of one volume along other axes differ only in their plane.
            families = None if axis == entry.axes[0] else ("plane",)
            samples.extend(_tag_samples(entry, facts, ref, families))
            if entry.zoom and zoom_per_image:
                samples.extend(_zoom_samples(entry, facts, split, seed, level, zoom_per_image))
    return samples if num_samples is None else samples[:num_samples]


def _sample(entry: Entry, facts: Facts, ref: ImageRef, sid: str, **kw: object) -> Sample:
    meta: dict[str, object] = {
        "package": entry.package,
        "file": entry.name,
        "licence": entry.licence,
    }
    meta.update(cast("dict[str, object]", kw.pop("meta", {})))
    return Sample(
        id=sid,
        images=(ref,),
        modality=facts.sample_modality,
        body_part=facts.body_part,
        source="realworld",
        meta=meta,
        **kw,  # type: ignore[arg-type]
    )


def _tag_samples(
    entry: Entry, facts: Facts, ref: ImageRef, families: tuple[str, ...] | None
) -> list[Sample]:
    stem = entry.name.split(".")[0].lower() + ("" if ref.axis is None else f"-axis{ref.axis}")
    out = []
    for family, question, answer, options, tag in facts.questions():
        if families is not None and family not in families:
            continue
        sid = f"realworld-{entry.package}-{stem}-{family}"
        out.append(
            _sample(
                entry,
                facts,
                ref,
                sid,
                question=question,
                answer=answer,
                answer_type="closed",
                options=options,
                question_type=family,
                meta={"tag": tag, "tag_value": facts.raw.get(tag)},
            )
        )
    return out


def _zoom_samples(
    entry: Entry, facts: Facts, split: str, seed: int, level: Difficulty, count: int
) -> list[Sample]:
    image = _base_image(entry.package, entry.name, ImageRef(uri=_uri(entry)))
    mask, scale = _display_mask(image)
    allowed = _allowed_fn(mask, scale)
    window = image.default_window
    amp = _AMP_OF_WINDOW * (window.width if window is not None else 255.0)
    rng = np.random.default_rng([seed, _SPLITS[split], entry.key])
    families = [DEFAULT_FAMILIES[i] for i in rng.permutation(len(DEFAULT_FAMILIES))]
    out = []
    for k in range(count):
        family = families[k % len(families)]
        options = FAMILY_OPTIONS[family]
        answer = options[int(rng.integers(len(options)))]
        try:
            draft = build_question(
                family,
                answer,
                rng,
                width=image.width,
                height=image.height,
                allowed=allowed,
                difficulty=level,
                amp=amp,
            )
        except DatasetError as e:
            logger.warning("realworld: no zoom question %d on %s: %s", k, entry.name, e)
            continue
        ref = ImageRef(uri=_uri(entry, draft.findings))
        sid = f"realworld-{split}-{entry.name.split('.')[0].lower()}-zoom{k}-{seed}"
        out.append(
            _sample(
                entry,
                facts,
                ref,
                sid,
                question=draft.question,
                answer=draft.answer,
                answer_type=draft.answer_type,
                options=draft.options,
                question_type=family,
                evidence=tuple(Evidence(bbox_px=b) for b in draft.evidence),
                meta={
                    "difficulty": level.level,
                    "chance": 1.0 / len(options),
                    "findings": [f.as_dict() for f in draft.findings],
                    "query": draft.query,
                },
            )
        )
    return out
