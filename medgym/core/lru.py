"""A thread-safe LRU bounded both by entry count and by bytes.

A count alone does not bound memory: one decoded 13,000 px image is 484 MB, one 4,096 px view
48 MB. The decoded-image cache and the tool server's rendered-view cache bound both.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from medgym.errors import ConfigError

__all__ = ["ByteLRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Keeps the most recently used values while both bounds hold.

    Args:
        max_items: Most entries kept (>= 1).
        max_bytes: Most bytes kept, as ``nbytes(value)`` counts them (>= 0); a value larger
            than this on its own is not kept at all.
        nbytes: Size of a value in bytes.

    Example:
        >>> lru = ByteLRU(10, 100, nbytes=len)
        >>> lru.put("a", b"x" * 60); lru.put("b", b"y" * 60)
        >>> lru.get("a"), len(lru), lru.bytes
        (None, 1, 60)
    """

    def __init__(self, max_items: int, max_bytes: int, *, nbytes: Callable[[V], int]) -> None:
        if max_items < 1:
            raise ConfigError(f"cache max_items must be >= 1; got {max_items}")
        if max_bytes < 0:
            raise ConfigError(f"cache max_bytes must be >= 0; got {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._nbytes = nbytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recent), or ``None``."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` as the most recent entry, dropping the oldest past either bound."""
        size = int(self._nbytes(value))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if size > self.max_bytes:
                return  # larger than the whole budget: serve it, keep nothing
            self._items[key] = (value, size)
            self.bytes += size
            while len(self._items) > self.max_items or self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
