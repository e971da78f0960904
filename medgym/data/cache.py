"""``load_image(ref)``: decode an :class:`ImageRef` once, behind a bounded, thread-safe LRU.

URIs are resolved by scheme: plain paths and ``file://`` go to :mod:`medgym.data.io`; other
schemes (``synthetic://``, ``pkg://``, ``store://``) are looked up in :data:`SCHEMES`, a registry
of ``"module:function"`` strings imported on first use, so adding a scheme never edits this file's
callers. A resolver takes the :class:`ImageRef` and returns a :class:`MedImage`.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from medgym.core.images import ImageRef, MedImage
from medgym.errors import ConfigError, DatasetError, did_you_mean

__all__ = ["SCHEMES", "ImageCache", "clear_image_cache", "load_image", "register_scheme"]

Resolver = Callable[[ImageRef], MedImage]

SCHEMES: dict[str, str | Resolver] = {
    "synthetic": "medgym.data.synthetic:resolve_synthetic",
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


def _decode(ref: ImageRef) -> MedImage:
    uri = ref.uri
    scheme, sep, _ = uri.partition("://")
    if sep and scheme != "file" and len(scheme) > 1:  # len > 1 keeps Windows drive letters paths
        return _resolver(scheme)(ref)
    from medgym.data.io import read_image_file

    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    return read_image_file(path, frame=ref.frame, axis=ref.axis)


class ImageCache:
    """A bounded LRU of decoded images, safe to share between threads.

    Args:
        maxsize: Most images kept; the least recently used is dropped first.
    """

    def __init__(self, maxsize: int = 64) -> None:
        if maxsize < 1:
            raise ConfigError(f"image cache maxsize must be >= 1; got {maxsize}")
        self.maxsize = maxsize
        self._items: OrderedDict[ImageRef, MedImage] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, ref: ImageRef) -> MedImage:
        """Return the decoded image for ``ref``, decoding it on a miss."""
        with self._lock:
            img = self._items.get(ref)
            if img is not None:
                self._items.move_to_end(ref)
                self.hits += 1
                return img
        img = _decode(ref)  # outside the lock: decoding can take a while
        with self._lock:
            self.misses += 1
            self._items[ref] = img
            self._items.move_to_end(ref)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return img

    def clear(self) -> None:
        """Drop every cached image."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_CACHE: ImageCache | None = None
_CACHE_LOCK = threading.Lock()


def image_cache() -> ImageCache:
    """The process-wide cache, sized by ``MEDGYM_IMAGE_CACHE_SIZE`` when first used."""
    global _CACHE
    if _CACHE is None:
        with _CACHE_LOCK:
            if _CACHE is None:
                from medgym.settings import get_settings

                _CACHE = ImageCache(get_settings().image_cache_size)
    return _CACHE


def load_image(ref: ImageRef) -> MedImage:
    """Decode ``ref`` (cached). Raises :class:`DatasetError` naming the file on failure."""
    return image_cache().get(ref)


def clear_image_cache() -> None:
    """Empty the process-wide image cache."""
    image_cache().clear()
