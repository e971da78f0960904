"""Helpers the release loaders share: roots, splits, record fields, image paths, errors.

Every problem with a record becomes a :class:`~medgym.errors.DatasetError` that names the file,
the record (index and id) and the field, raised while loading, never later in an episode.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from PIL import Image

from medgym.core.images import ImageRef
from medgym.data.cache import SCHEMES
from medgym.data.store import ImageStore
from medgym.errors import ConfigError, DatasetError, DependencyNotInstalled, did_you_mean

__all__ = [
    "AnswerType",
    "OnMissing",
    "RecordContext",
    "check_on_missing",
    "infer_answer_type",
    "jsonable",
    "leftover_meta",
    "local_image",
    "normalise_answer_type",
    "optional_text",
    "parquet_rows",
    "pick_split",
    "read_csv",
    "read_json",
    "resolve_root",
    "text_field",
    "value_image",
]

logger = logging.getLogger(__name__)

OnMissing = Literal["error", "skip"]
AnswerType = Literal["closed", "open"]
YES_NO = frozenset({"yes", "no"})


@dataclass(frozen=True)
class RecordContext:
    """Where a record came from, for error messages: file, position and id."""

    file: Path | str
    index: int
    record_id: str | None = None

    def error(self, field: str, problem: str) -> DatasetError:
        """A :class:`DatasetError` naming file, record and ``field``."""
        who = f"record {self.index}" + (f" (id {self.record_id})" if self.record_id else "")
        return DatasetError(f"{self.file}: {who}: field `{field}` {problem}")


def resolve_root(root: Path | str | None, dataset: str, folder: str) -> Path:
    """``root``, or ``$MEDGYM_DATA_DIR/<folder>``; it must be an existing folder.

    Raises:
        ConfigError: Neither is given.
        DatasetError: The folder does not exist.
    """
    if root is None:
        from medgym.settings import get_settings

        base = get_settings().data_dir
        if base is None:
            raise ConfigError(
                f"{dataset}: pass root=<folder of the downloaded release> or set MEDGYM_DATA_DIR "
                f"(then the release is looked for in $MEDGYM_DATA_DIR/{folder})"
            )
        root = Path(base) / folder
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{dataset}: root {path} does not exist")
    return path


_SKIPPED: ContextVar[list[str] | None] = ContextVar("medgym_skipped_images", default=None)
_F = TypeVar("_F", bound=Callable[..., Any])


def counts_skipped(dataset: str) -> Callable[[_F], _F]:
    """Decorate a loader: records skipped for a missing image are counted in one warning.

    ``on_missing_image="skip"`` drops such records (:func:`local_image`); the warning says how
    many and names the first, so a half-downloaded release does not load quietly short.
    """

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            skipped: list[str] = []
            token = _SKIPPED.set(skipped)
            try:
                out = fn(*args, **kwargs)
            finally:
                _SKIPPED.reset(token)
            if skipped:
                logger.warning(
                    "%s: skipped %d record(s) whose image is missing (on_missing_image='skip'); "
                    "first: %s",
                    dataset, len(skipped), skipped[0],
                )  # fmt: skip
            return out

        return inner  # type: ignore[return-value]

    return wrap


def note_skipped(what: str) -> None:
    """Count one skipped record for the enclosing :func:`counts_skipped` loader."""
    skipped = _SKIPPED.get()
    if skipped is not None:
        skipped.append(what)


def check_on_missing(value: str) -> OnMissing:
    """Validate the ``on_missing_image`` argument of a loader."""
    if value not in ("error", "skip"):
        raise ConfigError(f"on_missing_image must be 'error' or 'skip'; got {value!r}")
    return value  # type: ignore[return-value]


def pick_split(split: str, aliases: Mapping[str, str], dataset: str) -> str:
    """Map a split name (or an alias such as ``validation``) to the release's own name.

    Raises:
        ConfigError: Unknown split, with the closest known name suggested.
    """
    key = str(split).strip().lower()
    if key in aliases:
        return aliases[key]
    known = sorted(set(aliases))
    raise ConfigError(
        f"{dataset}: unknown split {split!r}{did_you_mean(key, known)}; known: {', '.join(known)}"
    )


def read_json(path: Path, dataset: str) -> Any:
    """Parse a JSON file, naming it on failure."""
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise DatasetError(f"{dataset}: expected annotation file {path}, which is missing") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{dataset}: cannot read {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise DatasetError(f"{dataset}: {path} is not valid JSON: {e}") from e
    except RecursionError as e:
        raise DatasetError(f"{dataset}: {path} nests JSON too deeply to be an annotation") from e


def read_csv(path: Path, dataset: str, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """Rows of a CSV file with a header line, naming the file on failure.

    Raises:
        DatasetError: The file is missing or unreadable, or its header lacks a ``required``
            column (a file without a header line reads its first row as the header).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise DatasetError(f"{dataset}: expected CSV file {path}, which is missing") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{dataset}: cannot read {path}: {e}") from e
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
    except csv.Error as e:
        raise DatasetError(f"{dataset}: {path} is not valid CSV: {e}") from e
    header = list(reader.fieldnames or [])
    missing = [c for c in required if c not in header]
    if missing:
        shown = ", ".join(repr(h) for h in header[:8]) or "nothing"
        raise DatasetError(
            f"{dataset}: {path} has no column(s) {', '.join(missing)}; its header line reads "
            f"{shown} (a CSV without a header line?)"
        )
    return rows


def parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a parquet file as dicts, read in batches (image structs become dicts)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise DependencyNotInstalled.for_extra("pyarrow", "data") from e
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"cannot read parquet file {path}: {e}") from e


def text_field(record: Mapping[str, Any], field: str, ctx: RecordContext) -> str:
    """A required, non-empty text field (numbers are accepted and turned into text)."""
    if field not in record or record[field] is None:
        raise ctx.error(field, "is missing")
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ctx.error(field, f"should be text; got {type(value).__name__} {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ctx.error(field, f"should be text; got {value!r}")
        value = int(value) if value.is_integer() else value
    out = str(value).strip()
    if not out:
        raise ctx.error(field, "is empty")
    return out


def optional_text(record: Mapping[str, Any], field: str, ctx: RecordContext) -> str | None:
    """An optional text field: ``None`` when absent, null or blank."""
    value = record.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # pandas/CSV "NaN" for an empty cell
    return text_field(record, field, ctx)


def normalise_answer_type(value: Any, ctx: RecordContext, field: str = "answer_type") -> AnswerType:
    """``"CLOSED"``/``"OPEN"`` (any case, padded) to ``"closed"``/``"open"``."""
    if value is None:
        raise ctx.error(field, "is missing (expected CLOSED or OPEN)")
    norm = str(value).strip().lower() if isinstance(value, str) else None
    if norm == "closed":
        return "closed"
    if norm == "open":
        return "open"
    raise ctx.error(field, f"should be CLOSED or OPEN; got {value!r}")


def infer_answer_type(answer: str | None, options: Iterable[str]) -> AnswerType:
    """``closed`` for multiple choice or a yes/no answer, else ``open``."""
    if tuple(options) or (answer is not None and answer.strip().lower() in YES_NO):
        return "closed"
    return "open"


def local_image(
    base: Path,
    relative: str,
    ctx: RecordContext,
    field: str,
    on_missing: OnMissing,
    *,
    explicit: bool = False,
) -> ImageRef | None:
    """An :class:`ImageRef` to ``base/relative`` if that file (or DICOM series folder) exists.

    Returns ``None`` (the caller skips the record) when it is missing and ``on_missing`` is
    ``"skip"``. ``explicit``: the record named the file with ``file://``, so it may lie anywhere.

    Raises:
        DatasetError: The path is absolute or leaves ``base`` (``..``), the file is not an
            image (checked from its first bytes), or it is missing and ``on_missing`` is
            ``"error"``.
    """
    rel = Path(relative)
    if not explicit and (rel.is_absolute() or ".." in rel.parts):
        raise ctx.error(
            field,
            f"is {relative!r}: image paths must stay inside the dataset folder {base} (write "
            "file:///absolute/path to name a file elsewhere on purpose)",
        )
    path = base / rel
    if path.is_file():
        _check_image_head(path, ctx, field)
        return ImageRef(uri=str(path))
    if path.is_dir():  # a DICOM series: one file per slice
        first = next((p for p in sorted(path.iterdir()) if p.is_file()), None)
        if first is None:
            raise ctx.error(field, f"points to folder {path}, which holds no DICOM slices")
        _check_image_head(first, ctx, field)
        return ImageRef(uri=str(path))
    if on_missing == "skip":
        logger.debug("%s: skipping record %s: image %s is missing", ctx.file, ctx.index, path)
        note_skipped(f"record {ctx.index} of {ctx.file} ({path})")
        return None
    raise ctx.error(field, f"points to image {path}, which does not exist")


def _check_image_head(path: Path, ctx: RecordContext, field: str) -> None:
    """Refuse a file whose first bytes are no image format medgym reads (at load, not later)."""
    from medgym.data.io import looks_like_image

    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as e:
        raise ctx.error(field, f"points to {path}, which cannot be read: {e}") from e
    if not looks_like_image(head, path.name):
        raise ctx.error(field, f"points to {path}, which is not an image file (its first bytes "
                               f"are {head[:8]!r})")  # fmt: skip


def value_image(
    value: Any,
    *,
    base: Path,
    store: ImageStore,
    ctx: RecordContext,
    field: str,
    on_missing: OnMissing,
) -> ImageRef | None:
    """An image given as a path, bytes, ``{"bytes", "path"}`` (HF/parquet) or a PIL image.

    Bytes go into ``store`` (``store://`` references); paths are relative to ``base``. A URI of
    a registered scheme (``store://`` already in ``store``, ``synthetic://``, ``pkg://``...) is
    kept as it is.
    """
    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        if data is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ctx.error(
                    field, f"holds `bytes` of type {type(data).__name__}; expected raw bytes"
                )
            return _put(store, data, _suffix(path), ctx, field)
        if isinstance(path, str) and path:
            return local_image(base, path, ctx, field, on_missing)
        raise ctx.error(field, "holds neither image bytes nor a path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _put(store, bytes(value), "", ctx, field)
    if isinstance(value, Image.Image):
        # PNG keeps 8/16-bit gray and RGB(A) losslessly; float and CMYK modes need TIFF.
        fmt = "PNG" if value.mode in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA") else "TIFF"
        buf = io.BytesIO()
        try:
            value.save(buf, format=fmt)
        except (OSError, ValueError) as e:
            raise ctx.error(field, f"holds a {value.mode} image that cannot be encoded: {e}") from e
        return _put(store, buf.getvalue(), f".{fmt.lower()}", ctx, field)
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        text = str(value).strip()
        scheme, sep, rest = text.partition("://")
        if sep and scheme == "file":
            return local_image(base, rest, ctx, field, on_missing, explicit=True)
        if sep and scheme == "store":
            if rest not in store:
                raise ctx.error(field, f"refers to {text}, which is not in {store!r}")
            return ImageRef(uri=text, sha256=rest)
        if sep and scheme in SCHEMES:  # e.g. synthetic:// or pkg://, checked by their resolver
            return ImageRef(uri=text)
        return local_image(base, text, ctx, field, on_missing)
    raise ctx.error(field, f"should be an image path, bytes or {{bytes, path}}; got {value!r:.80}")


def _put(store: ImageStore, data: Any, suffix: str, ctx: RecordContext, field: str) -> ImageRef:
    try:
        return store.put_bytes(bytes(data), suffix=suffix)
    except DatasetError as e:
        raise ctx.error(field, f"holds bytes that are not a readable image: {e}") from e


def _suffix(path: Any) -> str:
    if not isinstance(path, str):
        return ""
    name = path.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    ext = os.path.splitext(name)[1]
    return ext if 1 < len(ext) <= 6 and ext[1:].isalnum() else ""


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays, tuples, nested containers)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, pyarrow scalars
    if callable(tolist):
        return jsonable(tolist())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def leftover_meta(record: Mapping[str, Any], used: Iterable[str]) -> dict[str, Any]:
    """The record's fields that no Sample field took, made JSON-able, for ``Sample.meta``."""
    taken = set(used)
    return {str(k): jsonable(v) for k, v in record.items() if k not in taken}
