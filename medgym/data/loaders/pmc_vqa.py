"""PMC-VQA (Zhang et al., 2023), read in its published layout.

Source: https://huggingface.co/datasets/xmcmic/PMC-VQA (dataset card and files). Layout::

    <root>/
        train.csv  test.csv  test_clean.csv      version 1 (images.zip -> images/)
        train2.csv test2.csv                     version 2 (images2.zip -> images2/)
        images/PMC1064097_F1.jpg ...             (``figures/`` is accepted too)

One row of ``train.csv`` as shown on the dataset card::

    Figure_path   PMC1064097_F1.jpg
    Question      What is the uptake pattern in the breast?
    Answer        Focal uptake pattern
    Choice A      A:Diffuse uptake pattern
    Choice B      B:Focal uptake pattern
    Choice C      C:No uptake pattern
    Choice D      D:Cannot determine from the information given
    Answer_label  B

Every question is multiple choice: ``options`` are the choice texts with their ``A:`` prefixes
stripped, ``answer`` is the text of the ``Answer_label`` option, ``answer_type`` is ``closed``.
The published ``Answer`` column is kept in ``meta["answer_text"]``. Blank choices are dropped.
Splits are the CSV names: ``train``, ``test``, ``test_clean``, ``train2``, ``test2``. Ids are
``pmc_vqa:<split>-<row>`` (row = 0-based data row of the CSV).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from medgym.core.sample import Sample
from medgym.data.loaders._common import (
    RecordContext,
    check_on_missing,
    counts_skipped,
    leftover_meta,
    local_image,
    optional_text,
    pick_split,
    read_csv,
    resolve_root,
    text_field,
)

__all__ = ["load_pmc_vqa"]

logger = logging.getLogger(__name__)

NAME = "pmc_vqa"
LETTERS = ("A", "B", "C", "D")
_SPLITS = {s: s for s in ("train", "test", "test_clean", "train2", "test2")}
_IMAGE_FOLDERS = {1: ("images", "figures", "images2"), 2: ("images2", "images", "figures")}
_USED = ("Figure_path", "Question", "Answer", "Answer_label", *(f"Choice {x}" for x in LETTERS))


@counts_skipped(NAME)
def load_pmc_vqa(
    root: Path | None = None, split: str = "train", *, on_missing_image: str = "error"
) -> list[Sample]:
    """Load PMC-VQA from the folder of its public release.

    Args:
        root: Folder holding the CSV files and ``images/`` (or ``images2/``, ``figures/``);
            default ``$MEDGYM_DATA_DIR/pmc_vqa``.
        split: ``train``, ``test``, ``test_clean``, ``train2`` or ``test2``.
        on_missing_image: ``"error"`` (default) or ``"skip"`` rows whose image is absent.

    Raises:
        DatasetError: Missing files, or a row with a missing or bad field.
        ConfigError: Unknown split.
    """
    folder = resolve_root(root, NAME, NAME)
    name = pick_split(split, _SPLITS, NAME)
    on_missing = check_on_missing(on_missing_image)
    path = folder / f"{name}.csv"
    rows = read_csv(path, NAME, required=("Figure_path", "Question", "Answer_label"))
    version = 2 if name.endswith("2") else 1
    image_dirs = [folder / d for d in _IMAGE_FOLDERS[version] if (folder / d).is_dir()]
    samples: list[Sample] = []
    for index, row in enumerate(rows):
        ctx = RecordContext(path, index, f"{name}-{index}")
        figure = text_field(row, "Figure_path", ctx)
        base = next((d for d in image_dirs if (d / figure).is_file()), None)
        base = base or (image_dirs[0] if image_dirs else folder)
        ref = local_image(base, figure, ctx, "Figure_path", on_missing)
        if ref is None:
            continue
        options, answer = _choices(row, ctx)
        samples.append(
            Sample(
                id=f"{NAME}:{ctx.record_id}",
                images=(ref,),
                question=text_field(row, "Question", ctx),
                answer=answer,
                answer_type="closed",
                options=options,
                source=NAME,
                meta={
                    "language": "en",
                    "split": name,
                    "answer_text": optional_text(row, "Answer", ctx),
                    **leftover_meta(row, _USED),
                },
            )
        )
    logger.info("pmc_vqa: %d samples from %s", len(samples), path)
    return samples


def _choices(row: dict[str, str], ctx: RecordContext) -> tuple[tuple[str, ...], str]:
    """The option texts (prefix stripped, blanks dropped) and the text of ``Answer_label``."""
    texts: dict[str, str] = {}
    for letter in LETTERS:
        raw = optional_text(row, f"Choice {letter}", ctx)
        if raw is None:
            continue
        text = re.sub(rf"^\s*{letter}\s*[:.)]\s*", "", raw).strip()
        if not text:
            raise ctx.error(f"Choice {letter}", f"has only its letter and no text: {raw!r}")
        texts[letter] = text
    if len(texts) < 2:
        raise ctx.error("Choice A", f"needs at least two choices; found {len(texts)}")
    label = text_field(row, "Answer_label", ctx).upper()[:1]
    if label not in texts:
        expected = ", ".join(texts)
        got = row.get("Answer_label")
        raise ctx.error("Answer_label", f"should be one of {expected}; got {got!r}")
    return tuple(texts.values()), texts[label]
