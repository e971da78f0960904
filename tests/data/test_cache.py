"""The decoded-image cache: shared, and bounded in bytes as well as in count."""

from __future__ import annotations

import pytest

from medgym.core.images import ImageRef
from medgym.data.cache import ImageCache


def _ref(seed: int, size: int = 256) -> ImageRef:
    return ImageRef(uri=f"synthetic://v1?kind=xray&size={size}&seed={seed}&noise=1&decoys=0")


def test_cache_hits_and_bytes_budget() -> None:
    first = ImageCache(maxsize=64).get(_ref(1))
    per_image = first.pixels.nbytes
    cache = ImageCache(maxsize=64, max_bytes=int(per_image * 2.5))
    images = [cache.get(_ref(k)) for k in range(4)]
    assert len(cache) == 2 and cache.bytes == 2 * per_image  # bytes, not count, bound it
    assert cache.get(_ref(3)) is images[3] and cache.hits == 1
    assert cache.get(_ref(0)) is not images[0] and cache.misses == 5  # evicted, decoded again


def test_an_image_over_the_budget_is_decoded_but_not_kept() -> None:
    cache = ImageCache(maxsize=8, max_bytes=1000)
    img = cache.get(_ref(2))
    assert img.width == 256 and len(cache) == 0 and cache.bytes == 0


@pytest.mark.parametrize("maxsize", [0, -3])
def test_bad_size_is_refused(maxsize: int) -> None:
    from medgym.errors import ConfigError

    with pytest.raises(ConfigError, match="max_items"):
        ImageCache(maxsize=maxsize)
