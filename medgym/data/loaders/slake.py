"""SLAKE (Liu et al., 2021), read in its published layout (https://www.med-vqa.com/slake/).

Layout (``root`` may be ``Slake1.0/`` itself or the folder that holds it)::

    Slake1.0/
        train.json  validate.json  test.json     JSON lists of question records
        imgs/xmlab0/source.jpg ...               images named by ``img_name``

One record as published (``train.json``, as quoted by public loaders of the release)::

    {"img_id": 0, "img_name": "xmlab0/source.jpg",
     "question": "What modality is used to take this image?", "answer": "MRI", "q_lang": "en",
     "location": "Abdomen", "modality": "MRI", "answer_type": "OPEN", "base_type": "vqa",
     "content_type": "Modality", "triple": ["vhead", "_", "_"], "qid": 9835}

Splits: ``train``, ``validate`` (also ``validation``/``val``), ``test``. Questions come in
English and Chinese (``q_lang`` ``en``/``zh``); ``meta["language"]`` carries it, so
``medgym.data.load("slake", language="en")`` keeps the English ones.

Mapping: ``qid`` -> id ``slake:<qid>``; ``location`` -> ``body_part``; ``modality`` kept;
``content_type`` -> ``question_type``; ``answer_type`` -> closed/open; ``img_id``,
``base_type``, ``triple`` -> ``meta``.
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
from medgym.errors import DatasetError

__all__ = ["load_slake"]

logger = logging.getLogger(__name__)

NAME = "slake"
RELEASE_FOLDER = "Slake1.0"
_SPLITS = {
    "train": "train",
    "validate": "validate",
    "validation": "validate",
    "val": "validate",
    "test": "test",
}
_USED = (
    "qid",
    "img_name",
    "question",
    "answer",
    "q_lang",
    "location",
    "modality",
    "answer_type",
    "content_type",
)


@counts_skipped(NAME)
def load_slake(
    root: Path | None = None, split: str = "train", *, on_missing_image: str = "error"
) -> list[Sample]:
    """Load SLAKE from its public release.

    Args:
        root: ``Slake1.0/`` or the folder holding it; default ``$MEDGYM_DATA_DIR/slake``.
        split: ``train``, ``validate`` (``validation``, ``val``) or ``test``.
        on_missing_image: ``"error"`` (default) or ``"skip"`` records whose image is absent.

    Returns:
        English and Chinese samples in file order (filter with ``language=`` in ``load``).

    Raises:
        DatasetError: Missing files, or a record with a missing or bad field.
        ConfigError: Unknown split.
    """
    folder = _release_folder(resolve_root(root, NAME, NAME))
    name = pick_split(split, _SPLITS, NAME)
    on_missing = check_on_missing(on_missing_image)
    path = folder / f"{name}.json"
    records = read_json(path, NAME)
    if not isinstance(records, list):
        raise RecordContext(path, 0).error("<root>", "should be a JSON list of records")
    images = folder / "imgs"
    samples: list[Sample] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RecordContext(path, index).error("<record>", "should be a JSON object")
        ctx = RecordContext(path, index)
        qid = text_field(record, "qid", ctx)
        ctx = RecordContext(path, index, qid)
        language = text_field(record, "q_lang", ctx).lower()
        ref = local_image(images, text_field(record, "img_name", ctx), ctx, "img_name", on_missing)
        if ref is None:
            continue
        samples.append(
            Sample(
                id=f"{NAME}:{qid}",
                images=(ref,),
                question=text_field(record, "question", ctx),
                answer=text_field(record, "answer", ctx),
                answer_type=normalise_answer_type(record.get("answer_type"), ctx),
                modality=optional_text(record, "modality", ctx),
                body_part=optional_text(record, "location", ctx),
                question_type=optional_text(record, "content_type", ctx),
                source=NAME,
                meta={"language": language, "split": name, **leftover_meta(record, _USED)},
            )
        )
    logger.info("slake: %d samples from %s", len(samples), path)
    return samples


def _release_folder(root: Path) -> Path:
    for candidate in (root, root / RELEASE_FOLDER):
        if (candidate / "imgs").is_dir() or any(candidate.glob("*.json")):
            return candidate
    raise DatasetError(
        f"slake: {root} holds neither {RELEASE_FOLDER}/ nor train.json/validate.json/test.json "
        "with an imgs/ folder"
    )
