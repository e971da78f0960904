"""A content-addressed image store: bytes in, ``store://<sha256>`` references out.

Images that arrive as bytes (embedded in parquet, saved HF datasets, uploads to the tool server)
are kept once, keyed by the SHA-256 of their bytes, and referred to by an
:class:`~medgym.core.images.ImageRef` with ``uri="store://<sha256>"``. The process-wide
:func:`default_store` resolves those references (see :data:`medgym.data.cache.SCHEMES`).

With a ``root`` folder the bytes live on disk at ``root/<sha[:2]>/<sha><suffix>``, written
atomically, so other processes (Ray workers, the tool server) that point ``MEDGYM_STORE_DIR`` at
the same folder see the same images. Without one they live in this process's memory only.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("L", (8, 8)).save(buf, format="PNG")
    >>> store = ImageStore()
    >>> ref = store.put_bytes(buf.getvalue(), suffix=".png")
    >>> ref.uri == f"store://{ref.sha256}" and ref.sha256 in store
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

from medgym.core.images import ImageRef, MedImage
from medgym.data.io import read_image_bytes
from medgym.errors import ConfigError, DatasetError

__all__ = [
    "ImageStore", "default_store", "resolve_store", "set_default_store", "store_payload",
    "trailing_bytes",
]  # fmt: skip

logger = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,8}){0,2}$")


class ImageStore:
    """Images kept once by the SHA-256 of their bytes; safe to share between threads.

    Args:
        root: Folder to keep the files in (created on demand); ``None`` keeps them in memory.
        max_bytes: Most bytes kept; past it the oldest images are evicted (``None``: no bound).
        max_items: Most images kept, likewise.
    """

    def __init__(
        self, root: Path | None = None, *, max_bytes: int | None = None,
        max_items: int | None = None,
    ) -> None:  # fmt: skip
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, tuple[bytes, str]] = {}  # insertion order: oldest first
        self._memory_bytes = 0
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()
        self.max_bytes: int | None = None
        self.max_items: int | None = None
        self.set_quota(max_bytes=max_bytes, max_items=max_items)

    def set_quota(self, *, max_bytes: int | None, max_items: int | None) -> None:
        """Bound the store (the oldest images go first); ``None`` lifts a bound.

        Raises:
            ConfigError: A bound below 1.
        """
        for name, value in (("max_bytes", max_bytes), ("max_items", max_items)):
            if value is not None and value < 1:
                raise ConfigError(f"store {name} must be >= 1 or None; got {value}")
        self.max_bytes, self.max_items = max_bytes, max_items

    def __repr__(self) -> str:
        where = str(self.root) if self.root is not None else "memory"
        return f"ImageStore({where})"

    def put_bytes(self, data: bytes, *, suffix: str = "", validate: bool = True) -> ImageRef:
        """Store ``data`` (once) and return its ``store://`` reference.

        Args:
            data: The bytes of an image file.
            suffix: File extension kept with the bytes (``".png"``, ``".nii.gz"``): a format
                hint for readers and a convenience for people browsing ``root``.
            validate: Decode the bytes first, so nothing undecodable gets a reference. Skipped
                when the same bytes are already stored.

        Raises:
            DatasetError: The bytes do not decode as an image.
            ConfigError: ``suffix`` is not a plain extension.
        """
        if not _SUFFIX.match(suffix):
            raise ConfigError(f"suffix must look like '.png' or '.nii.gz'; got {suffix!r}")
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        ref = ImageRef(uri=f"store://{sha}", sha256=sha)
        if sha in self:
            return ref
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise DatasetError(
                f"{len(data)} bytes exceed the image store's quota of {self.max_bytes} bytes"
            )
        if validate:
            read_image_bytes(data, name=f"store://{sha}{suffix}")
            junk = trailing_bytes(data)
            if junk:
                raise DatasetError(
                    f"store://{sha}{suffix}: {junk} byte(s) after the end of the image data; "
                    "send the image file alone"
                )
        if self.root is None:
            with self._lock:
                if sha not in self._memory:
                    self._memory[sha] = (data, suffix)
                    self._memory_bytes += len(data)
                    self._evict_memory()
            return ref
        path = self.root / sha[:2] / f"{sha}{suffix}"
        _write_atomic(path, data)
        with self._lock:
            self._paths[sha] = path
        if self.max_bytes is not None or self.max_items is not None:
            self._evict_disk(keep=path)
        return ref

    def _over(self, count: int, total: int) -> bool:
        return (self.max_items is not None and count > self.max_items) or (
            self.max_bytes is not None and total > self.max_bytes
        )

    def _evict_memory(self) -> None:
        """Drop the oldest in-memory images past the quota (holding the lock)."""
        while len(self._memory) > 1 and self._over(len(self._memory), self._memory_bytes):
            sha = next(iter(self._memory))
            data, _ = self._memory.pop(sha)
            self._memory_bytes -= len(data)
            logger.info("image store: evicted store://%s (quota)", sha)

    def _evict_disk(self, *, keep: Path) -> None:
        """Delete the oldest files (by modification time) past the quota, never ``keep``.

        The folder may be shared by several workers: the quota is checked against what is on
        disk now, and a file another worker deleted first is skipped.
        """
        if self.root is None:
            return
        files = []
        for p in self.root.glob("??/*"):
            if _SHA.match(p.name[:64]) and not p.name.startswith(".tmp-"):
                try:
                    st = p.stat()
                except OSError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
        files.sort()
        count, total = len(files), sum(f[1] for f in files)
        for _, size, p in files:
            if not self._over(count, total):
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            with self._lock:
                self._paths.pop(p.name[:64], None)
            count, total = count - 1, total - size
            logger.info("image store: evicted %s (quota)", p.name)

    def put_file(self, path: Path, *, validate: bool = True) -> ImageRef:
        """Store the bytes of the file at ``path`` (its extension becomes the suffix).

        Raises:
            DatasetError: The file is missing or does not decode as an image.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DatasetError(f"cannot read image file {path} to store it: {e}") from e
        name = path.name.lower()
        suffix = ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()
        if not _SUFFIX.match(suffix):
            suffix = ""
        return self.put_bytes(data, suffix=suffix, validate=validate)

    def get_bytes(self, sha: str) -> bytes:
        """The stored bytes of ``sha`` (checked against the hash when read from disk).

        Raises:
            DatasetError: ``sha`` is unknown to this store, or the file on disk is damaged.
        """
        _check_sha(sha)
        with self._lock:
            entry = self._memory.get(sha)
        if entry is not None:
            return entry[0]
        path = self.path_of(sha)
        if path is None:
            raise DatasetError(f"image store://{sha} is not in {self!r}")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DatasetError(f"cannot read store://{sha} from {path}: {e}") from e
        if hashlib.sha256(data).hexdigest() != sha:
            raise DatasetError(f"{path} does not hash to {sha}: the stored file is damaged")
        return data

    def path_of(self, sha: str) -> Path | None:
        """Where ``sha`` lies on disk, or ``None`` (in-memory store, or not stored)."""
        _check_sha(sha)
        if self.root is None:
            return None
        with self._lock:
            path = self._paths.get(sha)
        if path is not None and path.is_file():
            return path
        folder = self.root / sha[:2]
        found = sorted(p for p in folder.glob(f"{sha}*") if _SUFFIX.match(p.name[len(sha) :]))
        if not found:
            return None
        with self._lock:
            self._paths[sha] = found[0]
        return found[0]

    def suffix_of(self, sha: str) -> str:
        """The suffix ``sha`` was stored with (``""`` if none or unknown)."""
        with self._lock:
            entry = self._memory.get(sha)
        if entry is not None:
            return entry[1]
        path = self.path_of(sha)
        return path.name[len(sha) :] if path is not None else ""

    def __contains__(self, sha: object) -> bool:
        if not isinstance(sha, str) or not _SHA.match(sha):
            return False
        with self._lock:
            if sha in self._memory:
                return True
        return self.root is not None and self.path_of(sha) is not None

    def __len__(self) -> int:
        if self.root is None:
            with self._lock:
                return len(self._memory)
        return sum(1 for p in self.root.glob("??/*") if _SHA.match(p.name[:64]))


def trailing_bytes(data: bytes) -> int:
    """Bytes after the end of a PNG, JPEG, BMP or WebP image (0 for other formats).

    Decoders stop at the image's end and ignore what follows, so an upload can carry anything
    after it; those bytes would be stored, hashed and kept.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        pos = 8  # walk the chunks (length, type, data, CRC) to IEND
        while pos + 8 <= len(data):
            length = int.from_bytes(data[pos : pos + 4], "big")
            end = pos + 12 + length
            if data[pos + 4 : pos + 8] == b"IEND":
                return max(0, len(data) - end)
            pos = end
        return 0
    if data.startswith(b"\xff\xd8"):
        # entropy-coded data never holds FF D9, so the image ends at the first one after the
        # first start of scan (an EXIF thumbnail, before it, has its own)
        sos = data.find(b"\xff\xda")
        end = data.find(b"\xff\xd9", sos) if sos >= 0 else -1
        return max(0, len(data) - (end + 2)) if end >= 0 else 0
    if data.startswith(b"BM") and len(data) >= 6:
        return max(0, len(data) - int.from_bytes(data[2:6], "little"))
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return max(0, len(data) - (int.from_bytes(data[4:8], "little") + 8))
    return 0


def _check_sha(sha: str) -> None:
    if not isinstance(sha, str) or not _SHA.match(sha):
        raise DatasetError(f"expected a 64-character lowercase hex sha256; got {sha!r}")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (readers never see halves)."""
    if path.is_file():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)  # gone already after a successful replace
    except OSError as e:
        raise DatasetError(f"cannot write image to the store at {path}: {e}") from e


_DEFAULT: ImageStore | None = None
_DEFAULT_LOCK = threading.Lock()


def default_store() -> ImageStore:
    """The process-wide store: on disk at ``MEDGYM_STORE_DIR`` if set, else in memory."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            from medgym.settings import get_settings

            _DEFAULT = ImageStore(get_settings().store_dir)
            logger.debug("default image store: %r", _DEFAULT)
        return _DEFAULT


def set_default_store(store: ImageStore | None) -> None:
    """Replace the process-wide store; ``None`` makes the next :func:`default_store` rebuild it."""
    global _DEFAULT
    if store is not None and not isinstance(store, ImageStore):
        raise ConfigError(f"expected an ImageStore or None; got {type(store).__name__}")
    with _DEFAULT_LOCK:
        _DEFAULT = store


def resolve_store(ref: ImageRef) -> MedImage:
    """Decode a ``store://<sha256>`` reference from the default store (the ``store`` scheme).

    Raises:
        DatasetError: Malformed URI, hash mismatch with ``ref.sha256``, or unknown image.
    """
    data, name = store_payload(ref, default_store())
    return read_image_bytes(data, name=name, frame=ref.frame, axis=ref.axis)


def store_payload(ref: ImageRef, store: ImageStore) -> tuple[bytes, str]:
    """The bytes of a ``store://<sha256>`` reference in ``store``, and a name with its suffix.

    Raises:
        DatasetError: Malformed URI, hash mismatch with ``ref.sha256``, or unknown image.
    """
    scheme, sep, sha = ref.uri.partition("://")
    if scheme != "store" or not sep:
        raise DatasetError(f"expected a store://<sha256> URI; got {ref.uri!r}")
    if ref.sha256 is not None and ref.sha256 != sha:
        raise DatasetError(f"{ref.uri}: sha256 field {ref.sha256!r} disagrees with the URI")
    return store.get_bytes(sha), f"{ref.uri}{store.suffix_of(sha)}"
