"""ByteLRU: bounded by count and by bytes; a value over the budget is served, not kept."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from medgym.core.lru import ByteLRU
from medgym.errors import ConfigError


def test_bytes_bound_evicts_the_oldest() -> None:
    lru: ByteLRU[str, bytes] = ByteLRU(100, 100, nbytes=len)
    for k in "abc":
        lru.put(k, b"x" * 40)
    assert "a" not in lru and lru.get("b") == b"x" * 40 and lru.bytes == 80
    lru.put("d", b"y" * 40)  # b was used last, so c goes
    assert "c" not in lru and "b" in lru and lru.bytes == 80


def test_count_bound_and_replacement() -> None:
    lru: ByteLRU[int, bytes] = ByteLRU(2, 1000, nbytes=len)
    lru.put(1, b"a")
    lru.put(2, b"bb")
    lru.put(2, b"bbb")  # replacing frees the old size
    assert lru.bytes == 4 and len(lru) == 2
    lru.put(3, b"c")
    assert 1 not in lru and lru.bytes == 4


def test_a_value_over_the_budget_is_not_kept() -> None:
    lru: ByteLRU[str, np.ndarray] = ByteLRU(10, 1000, nbytes=lambda a: a.nbytes)
    lru.put("small", np.zeros(100, np.uint8))
    lru.put("huge", np.zeros(10_000, np.uint8))
    assert "huge" not in lru and "small" in lru and lru.bytes == 100


@pytest.mark.parametrize(("items", "nbytes"), [(0, 10), (1, -1)], ids=["no-items", "neg-bytes"])
def test_bad_bounds_are_config_errors(items: int, nbytes: int) -> None:
    with pytest.raises(ConfigError):
        ByteLRU(items, nbytes, nbytes=len)


def test_threads_keep_the_byte_count_exact() -> None:
    lru: ByteLRU[int, bytes] = ByteLRU(50, 500, nbytes=len)

    def work(offset: int) -> None:
        for i in range(2000):
            lru.put((offset + i) % 97, b"z" * (i % 20))
            lru.get(i % 97)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lru.bytes == sum(len(v) for v, _ in lru._items.values()) <= 500
