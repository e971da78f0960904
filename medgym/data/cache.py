"""``load_image(ref)``: decode an :class:`ImageRef` once, behind a bounded, thread-safe LRU.

URIs are resolved by scheme: plain paths and ``file://`` go to :mod:`medgym.data.io`; other
schemes (``synthetic://``, ``pkg://``, ``store://``) are looked up in :data:`SCHEMES`, a registry
of ``"module:function"`` strings imported on first use, so adding a scheme never edits this file's
callers. A resolver takes the :class:`ImageRef` and returns a :class:`MedImage`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path

from medgym.core.images import ImageRef, MedImage
from medgym.core.lru import ByteLRU
from medgym.errors import DatasetError, did_you_mean

__all__ = ["SCHEMES", "ImageCache", "clear_image_cache", "load_image", "register_scheme"]

Resolver = Callable[[ImageRef], MedImage]

SCHEMES: dict[str, str | Resolver] = {
    "synthetic": "medgym.data.synthetic:resolve_synthetic",
    "synthetic3d": "medgym.data.synthetic3d:resolve_synthetic3d",
    "pkg": "medgym.data.realworld:resolve_pkg",
    "store": "medgym.data.store:resolve_store",
}


def register_scheme(scheme: str, resolver: str | Resolver) -> None:
    """Register a resolver (a callable or a ``"module:function"`` string) for ``scheme://``."""
    SCHEMES[scheme] = resolver


def _resolver(scheme: str) -> Resolver:
    entry = SCHEMES.get(scheme)
    if entry is None:
        raise DatasetError(
            f"no image reader for URI scheme `{scheme}://`; known: "
            f"{', '.join(sorted(SCHEMES))}, or a file path{did_you_mean(scheme, SCHEMES)}"
        )
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        SCHEMES[scheme] = entry
    return entry


def decode(ref: ImageRef) -> MedImage:
    """Decode ``ref`` through its scheme's resolver or as a file path (no cache)."""
    uri = ref.uri
    scheme, sep, _ = uri.partition("://")
    if sep and scheme != "file" and len(scheme) > 1:  # len > 1 keeps Windows drive letters paths
        return _resolver(scheme)(ref)
    from medgym.data.io import read_image_file

    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    return read_image_file(path, frame=ref.frame, axis=ref.axis)


class ImageCache:
    """A bounded LRU of decoded images (by count and by bytes), safe to share between threads.

    Args:
        maxsize: Most images kept; the least recently used is dropped first.
        max_bytes: Most pixel bytes kept (``MEDGYM_IMAGE_CACHE_BYTES``); an image larger than
            this is decoded for its caller and not kept.
    """

    def __init__(self, maxsize: int = 64, max_bytes: int = 2**31) -> None:
        self.maxsize = maxsize
        self._lru: ByteLRU[ImageRef, MedImage] = ByteLRU(
            maxsize, max_bytes, nbytes=lambda im: int(im.pixels.nbytes)
        )

    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
        return self._lru.hits

    @property
    def misses(self) -> int:
        """Lookups that decoded."""
        return self._lru.misses

    @property
    def bytes(self) -> int:
        """Pixel bytes held now."""
        return self._lru.bytes

    def get(self, ref: ImageRef) -> MedImage:
        """Return the decoded image for ``ref``, decoding it on a miss."""
        img = self._lru.get(ref)
        if img is None:
            img = decode(ref)  # outside any lock: decoding can take a while
            self._lru.put(ref, img)
        return img

    def peek(self, ref: ImageRef) -> MedImage | None:
        """The cached image for ``ref``, or ``None`` (never decodes)."""
        return self._lru.get(ref)

    def put(self, ref: ImageRef, image: MedImage) -> None:
        """Keep ``image`` for ``ref`` (decoded elsewhere: another process, an upload)."""
        self._lru.put(ref, image)

    def clear(self) -> None:
        """Drop every cached image."""
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


_CACHE: ImageCache | None = None
_CACHE_LOCK = threading.Lock()


def image_cache() -> ImageCache:
    """The process-wide cache, sized by ``MEDGYM_IMAGE_CACHE_SIZE`` when first used."""
    global _CACHE
    if _CACHE is None:
        with _CACHE_LOCK:
            if _CACHE is None:
                from medgym.settings import get_settings

                settings = get_settings()
                _CACHE = ImageCache(settings.image_cache_size, settings.image_cache_bytes)
    return _CACHE


def load_image(ref: ImageRef) -> MedImage:
    """Decode ``ref`` (cached). Raises :class:`DatasetError` naming the file on failure."""
    return image_cache().get(ref)


def clear_image_cache() -> None:
    """Empty the process-wide image cache."""
    image_cache().clear()
