"""OmniMedVQA (Hu et al., 2024), read in its published layout.

Source: https://huggingface.co/datasets/foreverbeliever/OmniMedVQA (``OmniMedVQA.zip``).
Layout (``root`` may be the unzipped ``OmniMedVQA/`` or the folder holding it)::

    OmniMedVQA/
        QA_information/Open-access/<Dataset>.json         e.g. "Chest CT Scan.json"
        QA_information/Restricted-access/<Dataset>.json   (images obtained separately)
        Images/<Dataset>/...                               ``image_path`` is relative to root

Each JSON file is a list of multiple-choice records with the fields ``question_id``,
``dataset``, ``question_type``, ``question``, ``gt_answer``, ``option_A``..``option_D`` (some
questions have fewer options), ``image_path`` and ``modality_type``. One record of
``Open-access/Chest CT Scan.json``, as re-published in Med-R1's README
(https://github.com/Yuxiang-Lai117/Med-R1), is::

    image_path     "Images/Chest CT Scan/test/adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib/
                    000139 (9).png"     (one string, wrapped here)
    question       "What imaging technique is employed for obtaining this image?"
    option_A..D    "Mammogram", "PET", "CT", "Fluoroscopy"
    gt_answer      "CT"                  (question_type "Modality Recognition")

One record of ``Chest CT Scan.json`` is known to carry ``modality`` instead of
``modality_type``; both are read.

Splits: ``open`` (Open-access, the default), ``restricted`` (Restricted-access) and ``all``.
``datasets=[...]`` keeps only the named JSON files (their stems). ``answer`` is the option text
that equals ``gt_answer``; ``answer_type`` is ``closed``; ids are ``omnimedvqa:<question_id>``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from medgym.core.sample import Sample
from medgym.data.loaders._common import (
    OnMissing,
    RecordContext,
    check_on_missing,
    counts_skipped,
    leftover_meta,
    local_image,
    optional_text,
    pick_split,
    read_json,
    resolve_root,
    text_field,
)
from medgym.errors import ConfigError, DatasetError, did_you_mean

__all__ = ["load_omnimedvqa"]

logger = logging.getLogger(__name__)

NAME = "omnimedvqa"
_ACCESS: dict[str, tuple[str, ...]] = {
    "open": ("Open-access",),
    "restricted": ("Restricted-access",),
    "all": ("Open-access", "Restricted-access"),
}
_SPLITS = {
    "open": "open",
    "open-access": "open",
    "test": "open",
    "restricted": "restricted",
    "restricted-access": "restricted",
    "all": "all",
}
_OPTIONS = tuple(f"option_{x}" for x in "ABCD")
_USED = (
    "question_id",
    "question",
    "gt_answer",
    "image_path",
    "modality_type",
    "modality",
    "question_type",
    *_OPTIONS,
)


@counts_skipped(NAME)
def load_omnimedvqa(
    root: Path | None = None,
    split: str = "open",
    *,
    datasets: Sequence[str] | None = None,
    on_missing_image: str = "error",
) -> list[Sample]:
    """Load OmniMedVQA from its public release.

    Args:
        root: ``OmniMedVQA/`` or the folder holding it; default ``$MEDGYM_DATA_DIR/omnimedvqa``.
        split: ``open`` (Open-access; ``test`` is an alias: the benchmark has no train split),
            ``restricted`` or ``all``.
        datasets: Keep only these source datasets (JSON file stems, e.g. ``"Chest CT Scan"``).
        on_missing_image: ``"error"`` (default) or ``"skip"`` records whose image is absent
            (restricted-access images are distributed separately).

    Raises:
        DatasetError: Missing files, or a record with a missing or bad field.
        ConfigError: Unknown split or dataset name.
    """
    folder = _release_folder(resolve_root(root, NAME, NAME))
    access = pick_split(split, _SPLITS, NAME)
    on_missing = check_on_missing(on_missing_image)
    files = _qa_files(folder, _ACCESS[access], datasets)
    samples: list[Sample] = []
    for path in files:
        samples.extend(_load_file(path, folder, on_missing))
    logger.info("omnimedvqa: %d samples from %d file(s) under %s", len(samples), len(files), folder)
    return samples


def _release_folder(root: Path) -> Path:
    for candidate in (root, root / "OmniMedVQA"):
        if (candidate / "QA_information").is_dir():
            return candidate
    raise DatasetError(f"omnimedvqa: no QA_information/ folder in {root} or {root}/OmniMedVQA")


def _qa_files(folder: Path, parts: tuple[str, ...], datasets: Sequence[str] | None) -> list[Path]:
    files = [p for part in parts for p in sorted((folder / "QA_information" / part).glob("*.json"))]
    if datasets is not None:
        if isinstance(datasets, str):
            datasets = [datasets]
        known = {p.stem for p in files}
        for name in datasets:
            if name not in known:
                raise ConfigError(
                    f"omnimedvqa: unknown dataset {name!r}{did_you_mean(name, known)}; "
                    f"known: {', '.join(sorted(known))}"
                )
        files = [p for p in files if p.stem in set(datasets)]
    if not files:
        where = " or ".join(f"{folder}/QA_information/{part}" for part in parts)
        raise DatasetError(f"omnimedvqa: no JSON files in {where}")
    return files


def _load_file(path: Path, folder: Path, on_missing: OnMissing) -> list[Sample]:
    records = read_json(path, NAME)
    if not isinstance(records, list):
        raise RecordContext(path, 0).error("<root>", "should be a JSON list of records")
    access = path.parent.name
    out: list[Sample] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RecordContext(path, index).error("<record>", "should be a JSON object")
        ctx = RecordContext(path, index)
        qid = text_field(record, "question_id", ctx)
        ctx = RecordContext(path, index, qid)
        texts = (optional_text(record, key, ctx) for key in _OPTIONS)
        options = tuple(o for o in texts if o is not None)
        gt = text_field(record, "gt_answer", ctx)
        answer = next((o for o in options if o == gt), None)
        if answer is None:
            raise ctx.error("gt_answer", f"{gt!r} is not one of the options {list(options)}")
        image_path = text_field(record, "image_path", ctx)
        ref = local_image(folder, image_path, ctx, "image_path", on_missing)
        if ref is None:
            continue
        modality = optional_text(record, "modality_type", ctx)
        modality = modality or optional_text(record, "modality", ctx)
        out.append(
            Sample(
                id=f"{NAME}:{qid}",
                images=(ref,),
                question=text_field(record, "question", ctx),
                answer=answer,
                answer_type="closed",
                options=options,
                modality=modality,
                question_type=optional_text(record, "question_type", ctx),
                source=NAME,
                meta={"language": "en", "access": access, **leftover_meta(record, _USED)},
            )
        )
    return out
