"""PathVQA (He et al., 2020), from either of its two public layouts.

(a) The Hugging Face parquet export (https://huggingface.co/datasets/flaviagiammarino/path-vqa),
splits ``train``/``validation``/``test``, images embedded as bytes::

    <root>/data/train-00000-of-00005.parquet ...      (or <root>/<split>-*.parquet,
    <root>/data/validation-*.parquet                   or <root>/default/<split>/*.parquet)
    <root>/data/test-*.parquet

    columns: image {"bytes": <jpeg>, "path": ...}, question (string), answer (string)
    e.g. question "where are liver stem cells (oval cells) located?",
         answer "in the canals of hering"            (first rows shown on the dataset card)

The embedded images go into the default :class:`~medgym.data.store.ImageStore` and the samples
refer to them as ``store://<sha256>`` (set ``MEDGYM_STORE_DIR`` to keep them on disk and share
them with other processes). Ids are ``pathvqa:<split>-<row>``, rows counted over the sorted shards.

(b) The original release (https://github.com/UCSD-AI4H/PathVQA), splits ``train``/``val``/
``test``; ``root`` may be ``pvqa/`` or the folder holding it::

    pvqa/qas/train/train_qa.pkl          pickled list of {"image", "question", "answer"}
    pvqa/images/train/train_0422.jpg     images named by the record's ``image``

    e.g. {'image': 'val_0261', 'question': 'What have lost their nuclei?',
          'answer': 'neutrophils'}                     (as quoted by public loaders)

The pickles are read with an unpickler that refuses every class and function, so a tampered file
cannot run code. Ids are ``pathvqa:<split>-<index>``.

Both: yes/no answers are ``closed``, the rest ``open``; ``modality`` is ``"Pathology"``;
``meta["language"] = "en"``. ``validation``/``val``/``validate`` name the same split.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

from medgym.core.sample import Sample
from medgym.data.loaders._common import (
    OnMissing,
    RecordContext,
    check_on_missing,
    counts_skipped,
    infer_answer_type,
    leftover_meta,
    local_image,
    parquet_rows,
    pick_split,
    resolve_root,
    text_field,
    value_image,
)
from medgym.data.store import ImageStore, default_store
from medgym.errors import ConfigError, DatasetError

__all__ = ["load_pathvqa"]

logger = logging.getLogger(__name__)

NAME = "pathvqa"
MODALITY = "Pathology"
_SPLITS = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "validate": "validation",
    "test": "test",
}
_PICKLE_SPLIT = {"train": "train", "validation": "val", "test": "test"}
_LAYOUTS = ("auto", "parquet", "original")


@counts_skipped(NAME)
def load_pathvqa(
    root: Path | None = None,
    split: str = "train",
    *,
    layout: str = "auto",
    store: ImageStore | None = None,
    on_missing_image: str = "error",
) -> list[Sample]:
    """Load PathVQA from the HF parquet export or the original pickles.

    Args:
        root: Folder of either layout; default ``$MEDGYM_DATA_DIR/pathvqa``.
        split: ``train``, ``validation`` (``val``) or ``test``.
        layout: ``"auto"`` (the parquet export if its files are found, else the original),
            ``"parquet"`` or ``"original"``.
        store: Where embedded images go (parquet); default :func:`default_store`.
        on_missing_image: ``"error"`` (default) or ``"skip"`` (original layout only).

    Raises:
        DatasetError: Missing files, or a record with a missing or bad field or image.
        ConfigError: Unknown split or layout.
    """
    if layout not in _LAYOUTS:
        raise ConfigError(f"pathvqa: layout must be one of {', '.join(_LAYOUTS)}; got {layout!r}")
    folder = resolve_root(root, NAME, NAME)
    name = pick_split(split, _SPLITS, NAME)
    on_missing = check_on_missing(on_missing_image)
    shards = _parquet_shards(folder, name)
    if layout == "parquet" or (layout == "auto" and shards):
        if not shards:
            raise DatasetError(
                f"pathvqa: no {name}-*.parquet under {folder}/data, {folder} or "
                f"{folder}/default/{name}"
            )
        samples = _from_parquet(shards, name, store or default_store())
    else:
        samples = _from_pickle(folder, _PICKLE_SPLIT[name], on_missing)
    logger.info("pathvqa: %d samples (split %s) from %s", len(samples), name, folder)
    return samples


def _parquet_shards(folder: Path, split: str) -> list[Path]:
    for pattern in (f"data/{split}-*.parquet", f"{split}-*.parquet", f"default/{split}/*.parquet"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def _from_parquet(shards: list[Path], split: str, store: ImageStore) -> list[Sample]:
    samples: list[Sample] = []
    row = 0
    for shard in shards:
        for record in parquet_rows(shard):
            ctx = RecordContext(shard, row, f"{split}-{row}")
            image = record.get("image")
            ref = value_image(
                image, base=shard.parent, store=store, ctx=ctx, field="image", on_missing="error"
            )
            samples.append(_sample(record, ctx, ref, split, used=("image", "question", "answer")))
            row += 1
    return samples


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain lists, dicts and strings; any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: data pickles only")


def _from_pickle(folder: Path, split: str, on_missing: OnMissing) -> list[Sample]:
    base = folder / "pvqa" if (folder / "pvqa" / "qas").is_dir() else folder
    path = base / "qas" / split / f"{split}_qa.pkl"
    if not path.is_file():
        raise DatasetError(
            f"pathvqa: expected {path} (original layout) or data/<split>-*.parquet (HF export)"
        )
    try:
        with path.open("rb") as f:
            records = _DataOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as e:
        raise DatasetError(f"pathvqa: cannot read {path}: {e}") from e
    if not isinstance(records, list):
        raise DatasetError(f"pathvqa: {path} should hold a list of records")
    images = base / "images" / split
    samples: list[Sample] = []
    for index, record in enumerate(records):
        ctx = RecordContext(path, index, f"{split}-{index}")
        if not isinstance(record, dict):
            raise ctx.error("<record>", "should be a dict with image, question and answer")
        image = text_field(record, "image", ctx)
        filename = image if Path(image).suffix else f"{image}.jpg"
        ref = local_image(images, filename, ctx, "image", on_missing)
        if ref is not None:
            samples.append(_sample(record, ctx, ref, split, used=("question", "answer")))
    return samples


def _sample(
    record: dict[str, Any], ctx: RecordContext, ref: Any, split: str, used: tuple[str, ...]
) -> Sample:
    answer = text_field(record, "answer", ctx)
    return Sample(
        id=f"{NAME}:{ctx.record_id}",
        images=(ref,),
        question=text_field(record, "question", ctx),
        answer=answer,
        answer_type=infer_answer_type(answer, ()),
        modality=MODALITY,
        source=NAME,
        meta={"language": "en", "split": split, **leftover_meta(record, used)},
    )
