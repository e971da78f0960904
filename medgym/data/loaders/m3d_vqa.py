"""M3D-VQA (Bai et al., 2024, M3D-Data), 3D CT questions, read in its published layout.

Source: https://huggingface.co/datasets/GoodBaiBai88/M3D-VQA (the CSV files) and the M3D-Cap
volumes they point into (https://huggingface.co/datasets/GoodBaiBai88/M3D-Cap, preprocessed to
``.npy``), with the code of https://github.com/BAAI-DCAI/M3D. Layout::

    <root>/
        M3D_VQA_train.csv  M3D_VQA_val.csv  M3D_VQA_test.csv      (any ``M3D_VQA_<split>.csv``)
        M3D_Cap_npy/ct_case/<case>/<volume>.npy  .../ct_quizze/... paths as in ``Image Path``

The CSV header, as written by M3D's generator (``Data/process/m3d_vqa_data_generation.py``)::

    Image Path,Text,Question Type,Question,Choice A,Choice B,Choice C,Choice D,Answer,Answer Choice

and read by its ``VQADataset`` (``LaMed/src/dataset/multi_dataset.py``): ``Image Path`` is
relative to the data root and names a ``.npy`` array "normalized 0-1, C,D,H,W" (``(1, 32, 256,
256)`` after M3D's preprocessing); closed-ended questions list ``Choice A``-``D`` and answer
``"<Answer Choice>. <Answer>"``; open-ended ones answer ``Answer``. ``Question Type`` is the
generator's aspect: 1 plane, 2 phase (or window), 3 organ, 4 abnormality, 5 location. ``Text``
is the radiology report the question was generated from: it is kept out of the sample (it
holds the answer) and only its length is recorded.

A record, as the generator's source shows one (one field per line: path, report, type,
question, choices A-D, answer, answer choice; the report shortened here)::

    M3D_Cap_npy/ct_case/007789/Axial_Zoomed___thin_cuts.npy
    Tree in bud nodules noted within the left inferior lingula with peribronchial
        thickening, may suggest pulmonary infection. [...] enlarged fatty liver (20 cm in MCL).
    3
    Which organ is primarily affected by the abnormality described in the image?
    Lung
    Liver
    Trachea
    Lymph nodes
    Lung
    A

It loads as a closed ``organ`` question with options ``Lung, Liver, Trachea, Lymph nodes`` and
answer ``Lung`` (``tests/data/test_m3d_vqa.py`` reads this record; the volume is made there).

Each row becomes one sample: ``options`` are the non-``NA`` choices and ``answer`` the text of
``Answer Choice``'s option (``closed``), or with ``closed=False`` no options and the ``Answer``
text (``open``). The volume reads as slices (``docs/datasets.md``, NumPy volumes); it carries
no spacing, so ``measure`` says distances are unknown. Ids are ``m3d_vqa:<split>-<row>``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from medgym.core.sample import Sample
from medgym.data.loaders._common import (
    RecordContext,
    check_on_missing,
    counts_skipped,
    local_image,
    optional_text,
    read_csv,
    resolve_root,
    text_field,
)
from medgym.errors import DatasetError

__all__ = ["QUESTION_TYPES", "load_m3d_vqa"]

logger = logging.getLogger(__name__)

NAME = "m3d_vqa"
LETTERS = ("A", "B", "C", "D")
#: ``Question Type`` codes of the generator, as medgym question types.
QUESTION_TYPES = {"1": "plane", "2": "phase", "3": "organ", "4": "abnormality", "5": "location"}


@counts_skipped(NAME)
def load_m3d_vqa(
    root: Path | None = None,
    split: str = "test",
    *,
    closed: bool = True,
    on_missing_image: str = "error",
) -> list[Sample]:
    """Load M3D-VQA from the folder of its release.

    Args:
        root: Folder holding ``M3D_VQA_<split>.csv`` and the ``.npy`` volumes its rows name;
            default ``$MEDGYM_DATA_DIR/m3d_vqa``.
        split: The ``<split>`` of the CSV name (``train``, ``val``, ``test``...).
        closed: Multiple choice (the four choices) or open-ended (the answer text alone).
        on_missing_image: ``"error"`` (default) or ``"skip"`` rows whose volume is absent.

    Raises:
        DatasetError: Missing CSV, or a row with a missing or bad field.
    """
    folder = resolve_root(root, NAME, NAME)
    on_missing = check_on_missing(on_missing_image)
    path = folder / f"M3D_VQA_{split}.csv"
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("M3D_VQA_*.csv"))
        raise DatasetError(
            f"{NAME}: no {path.name} in {folder}; found {', '.join(found) or 'no M3D_VQA_*.csv'}"
        )
    rows = read_csv(path, NAME, required=("Image Path", "Question", "Answer", "Answer Choice"))
    samples: list[Sample] = []
    for index, row in enumerate(rows):
        ctx = RecordContext(path, index, f"{split}-{index}")
        ref = local_image(folder, text_field(row, "Image Path", ctx), ctx, "Image Path", on_missing)
        if ref is None:
            continue
        kind = (optional_text(row, "Question Type", ctx) or "").strip()
        answer_text = text_field(row, "Answer", ctx)
        options, answer = _choices(row, ctx) if closed else ((), answer_text)
        samples.append(
            Sample(
                id=f"{NAME}:{ctx.record_id}",
                images=(ref,),
                question=text_field(row, "Question", ctx),
                answer=answer,
                answer_type="closed" if closed else "open",
                options=options,
                modality="CT",
                question_type=QUESTION_TYPES.get(kind, kind or None),
                source=NAME,
                meta={
                    "language": "en",
                    "split": split,
                    "answer_text": answer_text,
                    "report_chars": len(row.get("Text") or ""),
                },
            )
        )
    logger.info("m3d_vqa: %d samples from %s", len(samples), path)
    return samples


def _choices(row: dict[str, str], ctx: RecordContext) -> tuple[tuple[str, ...], str]:
    """The non-``NA`` choice texts and the text of ``Answer Choice``."""
    texts = {}
    for letter in LETTERS:
        text = (optional_text(row, f"Choice {letter}", ctx) or "").strip()
        if text and text.upper() != "NA":
            texts[letter] = text
    if len(texts) < 2:
        raise ctx.error("Choice A", f"needs at least two choices; found {len(texts)}")
    label = text_field(row, "Answer Choice", ctx).strip().upper()[:1]
    if label not in texts:
        got = row.get("Answer Choice")
        raise ctx.error("Answer Choice", f"should be one of {', '.join(texts)}; got {got!r}")
    return tuple(texts.values()), texts[label]
