"""A Hugging Face ``datasets`` dataset saved with ``save_to_disk``.

``root`` is the folder ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` wrote. Columns map
to sample fields exactly as in :mod:`medgym.data.loaders.generic` (``fields=`` renames them).
Rows are read in Arrow form, so ``Image`` columns arrive as their stored ``{"bytes", "path"}``
without being decoded: the bytes go to an :class:`~medgym.data.store.ImageStore` and the samples
hold ``store://`` references; a path-only image is resolved against ``root``.

Example (what :func:`load_hf_disk` reads)::

    ds = datasets.Dataset.from_dict(
        {"image": [pil_image], "question": ["Is there a nodule?"], "answer": ["yes"]},
        features=datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                    "answer": datasets.Value("string")}),
    )
    datasets.DatasetDict({"train": ds}).save_to_disk("my_set")
    # medgym.data.load("hf_disk", root="my_set", split="train")

Needs the ``datasets`` package (``pip install 'medgym[hf]'``), imported only when called.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medgym.core.sample import Sample
from medgym.data.loaders._common import check_on_missing, counts_skipped, resolve_root
from medgym.data.loaders.generic import RowConverter, resolve_fields
from medgym.data.store import ImageStore, default_store
from medgym.errors import ConfigError, DatasetError, DependencyNotInstalled, did_you_mean

__all__ = ["load_hf_disk"]

logger = logging.getLogger(__name__)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise DependencyNotInstalled.for_extra("datasets", "hf") from e
    return datasets


@counts_skipped("hf_disk")
def load_hf_disk(
    root: Path | None = None,
    split: str = "train",
    *,
    fields: Mapping[str, str] | None = None,
    dataset_name: str = "hf_disk",
    store: ImageStore | None = None,
    on_missing_image: str = "error",
) -> list[Sample]:
    """Load a dataset saved with ``save_to_disk``.

    Args:
        root: The saved folder; default ``$MEDGYM_DATA_DIR/hf_disk``.
        split: Split of a saved ``DatasetDict``; ignored for a single saved ``Dataset``.
        fields: Sample field -> column name (see :mod:`medgym.data.loaders.generic`).
        dataset_name: Used as id prefix and ``Sample.source`` (``load`` takes ``name``
            itself, so this one has a longer name).
        store: Where image bytes go; default :func:`default_store`.
        on_missing_image: ``"error"`` (default) or ``"skip"`` rows whose image file is absent.

    Raises:
        DependencyNotInstalled: ``datasets`` is not installed.
        DatasetError: Not a saved dataset, or a row with a missing or bad field.
        ConfigError: Unknown split or field.
    """
    datasets = _datasets()
    name = dataset_name
    mapping = resolve_fields(fields)
    on_missing = check_on_missing(on_missing_image)
    folder = resolve_root(root, name, "hf_disk")
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DatasetError(f"{name}: {folder} is not a dataset saved with save_to_disk: {e}") from e
    table = _pick_split(datasets, loaded, split, name)
    convert = RowConverter(name, mapping, folder, store or default_store(), on_missing)
    samples: list[Sample] = []
    index = 0
    for batch in table.with_format("arrow").iter(batch_size=256):
        for row in batch.to_pylist():
            sample = convert(row, folder, index)
            if sample is not None:
                samples.append(sample)
            index += 1
    logger.info("%s: %d samples from %s", name, len(samples), folder)
    return samples


def _pick_split(datasets: Any, loaded: Any, split: str, name: str) -> Any:
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if split in loaded:
        return loaded[split]
    known = sorted(loaded)
    raise ConfigError(
        f"{name}: unknown split {split!r}{did_you_mean(split, known)}; known: {', '.join(known)}"
    )
