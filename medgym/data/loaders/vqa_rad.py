"""VQA-RAD (Lau et al., 2018), read in its published OSF layout (https://osf.io/89kps/).

Layout::

    <root>/
        VQA_RAD Dataset Public.json      one JSON list of question records
        VQA_RAD Image Folder/            synpic*.jpg images named by ``image_name``

One record as published (the first of the release, as quoted by public loaders of it)::

    {"qid": 1, "image_name": "synpic54610.jpg", "image_organ": "HEAD", "answer": "Yes",
     "answer_type": "CLOSED", "question_type": "PRES",
     "question": "Are regions of the brain infarcted?", "phrase_type": "freeform"}

The release has no split file: ``phrase_type`` tells them apart. It is ``freeform`` or
``para`` (paraphrased) for the training set and ``test_freeform`` or ``test_para`` for the test
set; any value starting with ``test`` counts as test. Splits: ``train``, ``test`` and ``all``.

Mapping: ``qid`` -> id ``vqa_rad:<qid>``; ``image_organ`` -> ``body_part``; ``question_type``
kept; ``answer_type`` -> closed/open; every other field (``phrase_type``, ``evaluation``,
``question_rephrase``...) -> ``meta``; ``meta["language"] = "en"``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from medgym.core.sample import Sample
from medgym.data.loaders._common import (
    RecordContext,
    check_on_missing,
    counts_skipped,
    leftover_meta,
    local_image,
    normalise_answer_type,
    optional_text,
    pick_split,
    read_json,
    resolve_root,
    text_field,
)

__all__ = ["ANNOTATION_FILE", "IMAGE_FOLDER", "load_vqa_rad"]

logger = logging.getLogger(__name__)

NAME = "vqa_rad"
ANNOTATION_FILE = "VQA_RAD Dataset Public.json"
IMAGE_FOLDER = "VQA_RAD Image Folder"
_KNOWN_PHRASES = {"freeform", "para", "test_freeform", "test_para"}
_SPLITS = {"train": "train", "test": "test", "all": "all"}
_USED = ("qid", "image_name", "image_organ", "answer", "answer_type", "question_type", "question")


@counts_skipped(NAME)
def load_vqa_rad(
    root: Path | None = None, split: str = "train", *, on_missing_image: str = "error"
) -> list[Sample]:
    """Load VQA-RAD from the folder of its public release.

    Args:
        root: Folder holding ``VQA_RAD Dataset Public.json`` and ``VQA_RAD Image Folder/``;
            default ``$MEDGYM_DATA_DIR/vqa_rad``.
        split: ``train`` (``freeform``/``para`` questions), ``test`` (``test_*``) or ``all``.
        on_missing_image: ``"error"`` (default) or ``"skip"`` records whose image is absent.

    Returns:
        The samples in file order.

    Raises:
        DatasetError: Missing files, or a record with a missing or bad field.
        ConfigError: Unknown split.
    """
    folder = resolve_root(root, NAME, NAME)
    wanted = pick_split(split, _SPLITS, NAME)
    on_missing = check_on_missing(on_missing_image)
    path = folder / ANNOTATION_FILE
    records = read_json(path, NAME)
    if not isinstance(records, list):
        raise RecordContext(path, 0).error("<root>", "should be a JSON list of records")
    images = folder / IMAGE_FOLDER
    samples: list[Sample] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RecordContext(path, index).error("<record>", "should be a JSON object")
        ctx = RecordContext(path, index)
        qid = text_field(record, "qid", ctx)
        ctx = RecordContext(path, index, qid)
        phrase = text_field(record, "phrase_type", ctx)
        if phrase not in _KNOWN_PHRASES:
            logger.debug("%s: record %d has an unusual phrase_type %r", path, index, phrase)
        in_split = "test" if phrase.lower().startswith("test") else "train"
        if wanted not in ("all", in_split):
            continue
        image_name = text_field(record, "image_name", ctx)
        ref = local_image(images, image_name, ctx, "image_name", on_missing)
        if ref is None:
            continue
        samples.append(
            Sample(
                id=f"{NAME}:{qid}",
                images=(ref,),
                question=text_field(record, "question", ctx),
                answer=text_field(record, "answer", ctx),
                answer_type=normalise_answer_type(record.get("answer_type"), ctx),
                body_part=optional_text(record, "image_organ", ctx),
                question_type=optional_text(record, "question_type", ctx),
                source=NAME,
                meta={"language": "en", **leftover_meta(record, _USED)},
            )
        )
    logger.info("vqa_rad: %d samples from %s (split %s)", len(samples), path, wanted)
    return samples
