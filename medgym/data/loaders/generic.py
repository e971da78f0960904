"""Any VQA table in JSONL, JSON, CSV or parquet, with a column mapping.

Each row is one sample. ``fields`` maps a :class:`~medgym.core.sample.Sample` field to the
column that holds it; unmapped fields use the column of the same name:

============== =================================================================================
field          column value
============== =================================================================================
id             any scalar; default: the row index. Ids become ``<dataset_name>:<id>``.
image          a path (relative to the table's folder), bytes, ``{"bytes", "path"}``, or a
               URI of a registered scheme (``store://`` already stored, ``synthetic://``...)
images         a list of those (used instead of ``image`` when present)
question       text (required)
answer         text, or empty for unlabelled data; a letter ``A``.. picks from ``options``
answer_type    ``closed``/``open`` (any case); default: closed if options or yes/no answer
options        a list of texts (in CSV: a JSON list)
modality, body_part, question_type    text
language       text, stored as ``meta["language"]`` (what ``load(language=...)`` filters on)
evidence       a list of ``[x1, y1, x2, y2]`` boxes in original pixels of image 0, or of
               ``{"image_index": i, "bbox_px": [...]}``
============== =================================================================================

Other columns go into ``meta``. Image bytes are put in an :class:`~medgym.data.store.ImageStore`
(``store://`` references). Example, a JSONL line::

    {"id": "q1", "image": "imgs/chest.png", "question": "Is there a nodule?", "answer": "yes"}

and ``load("generic", root="my_set.jsonl")`` or, for ``my_set/train.jsonl`` and
``my_set/test.jsonl``, ``load("generic", root="my_set", split="test")``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medgym.core.images import ImageRef
from medgym.core.sample import Evidence, Sample
from medgym.data.loaders._common import (
    OnMissing,
    RecordContext,
    check_on_missing,
    counts_skipped,
    infer_answer_type,
    leftover_meta,
    normalise_answer_type,
    optional_text,
    parquet_rows,
    read_csv,
    read_json,
    resolve_root,
    text_field,
    value_image,
)
from medgym.data.store import ImageStore, default_store
from medgym.errors import ConfigError, DatasetError, did_you_mean

__all__ = ["DEFAULT_FIELDS", "RowConverter", "load_generic", "resolve_fields"]

logger = logging.getLogger(__name__)

_FIELD_NAMES = (
    "id",
    "image",
    "images",
    "question",
    "answer",
    "answer_type",
    "options",
    "modality",
    "body_part",
    "question_type",
    "language",
    "evidence",
)
DEFAULT_FIELDS: dict[str, str] = {k: k for k in _FIELD_NAMES}
_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")


def resolve_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    """:data:`DEFAULT_FIELDS` updated with ``fields``; unknown Sample fields are refused."""
    out = dict(DEFAULT_FIELDS)
    for key, column in (fields or {}).items():
        if key not in DEFAULT_FIELDS:
            raise ConfigError(
                f"fields: unknown sample field {key!r}{did_you_mean(key, DEFAULT_FIELDS)}; "
                f"known: {', '.join(DEFAULT_FIELDS)}"
            )
        if not isinstance(column, str) or not column:
            raise ConfigError(f"fields[{key!r}] must be a column name; got {column!r}")
        out[key] = column
    return out


@dataclass(frozen=True)
class RowConverter:
    """Turns one table row into a :class:`Sample` (shared by ``generic`` and ``hf_disk``).

    Attributes:
        name: Dataset name: the id prefix and ``Sample.source``.
        fields: Sample field -> column (see :func:`resolve_fields`).
        base: Folder that relative image paths start from.
        store: Where image bytes go.
        on_missing: ``"error"`` or ``"skip"`` rows whose image file is absent.
    """

    name: str
    fields: Mapping[str, str]
    base: Path
    store: ImageStore
    on_missing: OnMissing = "error"

    def __call__(self, row: Mapping[str, Any], file: Path | str, index: int) -> Sample | None:
        """The sample of ``row``, or ``None`` when it is skipped for a missing image."""
        f = self.fields
        ctx = RecordContext(file, index)
        rid = optional_text(row, f["id"], ctx) or str(index)
        ctx = RecordContext(file, index, rid)
        images = self._images(row, ctx)
        if images is None:
            return None
        options = _options(row.get(f["options"]), ctx, f["options"])
        answer = optional_text(row, f["answer"], ctx)
        if answer is not None and options and answer not in options:
            answer = _option_by_letter(answer, options, ctx, f["answer"])
        raw_type = row.get(f["answer_type"])
        if raw_type is None or (isinstance(raw_type, str) and not raw_type.strip()):
            answer_type = infer_answer_type(answer, options)
        else:
            answer_type = normalise_answer_type(raw_type, ctx, f["answer_type"])
        language = optional_text(row, f["language"], ctx)
        meta = leftover_meta(row, f.values())
        if language is not None:
            meta["language"] = language.lower()
        try:
            return Sample(
                id=f"{self.name}:{rid}",
                images=images,
                question=text_field(row, f["question"], ctx),
                answer=answer,
                answer_type=answer_type,
                options=options,
                modality=optional_text(row, f["modality"], ctx),
                body_part=optional_text(row, f["body_part"], ctx),
                question_type=optional_text(row, f["question_type"], ctx),
                evidence=_evidence(row.get(f["evidence"]), ctx, f["evidence"]),
                source=self.name,
                meta=meta,
            )
        except ValidationError as e:
            raise ctx.error("<record>", f"does not make a valid sample: {e}") from e

    def _images(self, row: Mapping[str, Any], ctx: RecordContext) -> tuple[ImageRef, ...] | None:
        many, one = self.fields["images"], self.fields["image"]
        values = _json_list(row.get(many), ctx, many)
        field = many
        if values is None:
            if row.get(one) is None:
                raise ctx.error(one, f"is missing (and no `{many}` list either)")
            values, field = [row[one]], one
        if not values:
            raise ctx.error(field, "lists no images")
        refs = []
        for value in values:
            ref = value_image(
                value,
                base=self.base,
                store=self.store,
                ctx=ctx,
                field=field,
                on_missing=self.on_missing,
            )
            if ref is None:
                return None
            refs.append(ref)
        return tuple(refs)


def _json_list(value: Any, ctx: RecordContext, field: str) -> list[Any] | None:
    """A list cell; CSV cells hold it as JSON text. ``None`` when absent or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as e:
            raise ctx.error(field, f"should be a list (JSON in CSV); got {value!r:.80}") from e
    if not isinstance(value, (list, tuple)):
        raise ctx.error(field, f"should be a list; got {type(value).__name__}")
    return list(value)


def _options(value: Any, ctx: RecordContext, field: str) -> tuple[str, ...]:
    items = _json_list(value, ctx, field) or []
    out = []
    for item in items:
        if (
            isinstance(item, bool)
            or not isinstance(item, (str, int, float))
            or not str(item).strip()
        ):
            raise ctx.error(field, f"should list non-empty texts; got {item!r}")
        out.append(str(item).strip())
    return tuple(out)


def _option_by_letter(answer: str, options: tuple[str, ...], ctx: RecordContext, field: str) -> str:
    letter = answer.strip().rstrip(".):").upper()
    if len(letter) == 1 and "A" <= letter <= "Z" and ord(letter) - 65 < len(options):
        return options[ord(letter) - 65]
    raise ctx.error(field, f"{answer!r} is neither one of the options {list(options)} nor a letter")


def _evidence(value: Any, ctx: RecordContext, field: str) -> tuple[Evidence, ...]:
    items = _json_list(value, ctx, field) or []
    out = []
    for item in items:
        try:
            if isinstance(item, Mapping):
                out.append(Evidence.model_validate(dict(item)))
            else:
                out.append(Evidence(bbox_px=tuple(item)))
        except (ValidationError, TypeError) as e:
            raise ctx.error(field, f"has a bad box {item!r}: expected [x1, y1, x2, y2]") from e
    return tuple(out)


@counts_skipped("generic")
def load_generic(
    root: Path | None = None,
    split: str = "train",
    *,
    fields: Mapping[str, str] | None = None,
    dataset_name: str = "generic",
    store: ImageStore | None = None,
    on_missing_image: str = "error",
) -> list[Sample]:
    """Load a VQA table (JSONL, JSON list, CSV or parquet; told by extension).

    Args:
        root: The table file, or a folder holding ``<split>.jsonl|json|csv|parquet`` (or
            ``<split>-*.parquet`` shards); default ``$MEDGYM_DATA_DIR/generic``.
        split: Which table of a folder to read; ignored when ``root`` is a file.
        fields: Sample field -> column name, for columns not named like the fields.
        dataset_name: Used as id prefix and ``Sample.source`` (``load`` takes ``name``
            itself, so this one has a longer name).
        store: Where image bytes go; default :func:`default_store`.
        on_missing_image: ``"error"`` (default) or ``"skip"`` rows whose image is absent.

    Raises:
        DatasetError: No table, unreadable table, or a row with a missing or bad field.
        ConfigError: Unknown field in ``fields``.
    """
    mapping = resolve_fields(fields)
    on_missing = check_on_missing(on_missing_image)
    name = dataset_name
    files = _table_files(resolve_root(root, name, "generic"), split)
    convert = RowConverter(name, mapping, files[0].parent, store or default_store(), on_missing)
    samples: list[Sample] = []
    index = 0
    for path in files:
        for row in _rows(path, name):
            sample = convert(row, path, index)
            if sample is not None:
                samples.append(sample)
            index += 1
    logger.info("%s: %d samples from %s", name, len(samples), ", ".join(map(str, files)))
    return samples


def _table_files(root: Path, split: str) -> list[Path]:
    if root.is_file():
        if root.suffix.lower() not in _EXTENSIONS:
            raise DatasetError(f"{root}: expected a {', '.join(_EXTENSIONS)} file")
        return [root]
    for ext in _EXTENSIONS:
        if (root / f"{split}{ext}").is_file():
            return [root / f"{split}{ext}"]
    for pattern in (f"{split}-*.parquet", f"data/{split}-*.parquet"):
        shards = sorted(root.glob(pattern))
        if shards:
            return shards
    found = sorted(p.name for p in root.iterdir() if p.suffix.lower() in _EXTENSIONS)
    raise DatasetError(
        f"no table for split {split!r} in {root}: expected {split}.jsonl, .json, .csv or "
        f".parquet; found {', '.join(found) or 'no tables'}"
    )


def _rows(path: Path, name: str) -> Iterable[Mapping[str, Any]]:
    ext = path.suffix.lower()
    if ext == ".jsonl":
        return _jsonl_rows(path)
    if ext == ".csv":
        return read_csv(path, name)
    if ext == ".parquet":
        return parquet_rows(path)
    data = read_json(path, name)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a JSON list of objects, one per sample")
    return data


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{path}: line {number} is not valid JSON: {e}") from e
                except RecursionError as e:
                    raise DatasetError(f"{path}: line {number} nests JSON too deeply") from e
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}: line {number} should be a JSON object")
                yield row
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
