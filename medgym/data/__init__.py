"""Datasets: the sample schema's loaders, bundled offline sets and image I/O.

``load(name, root=..., split=...)`` looks a loader up in :data:`DATASETS` (``"module:function"``
strings imported on first use) and applies the common filters.

Example:
    >>> from medgym.data import load
    >>> samples = load("synthetic", split="test", num_samples=4)
    >>> len(samples)
    4
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medgym.core.sample import Sample
from medgym.data.cache import clear_image_cache, load_image
from medgym.errors import ConfigError, did_you_mean

__all__ = [
    "DATASETS", "clear_image_cache", "load", "load_image", "loader_takes", "register_dataset",
]  # fmt: skip

logger = logging.getLogger(__name__)

Loader = Callable[..., list[Sample]]

DATASETS: dict[str, str | Loader] = {
    "synthetic": "medgym.data.synthetic:load_synthetic",
    "synthetic3d": "medgym.data.synthetic3d:load_synthetic3d",
    "realworld": "medgym.data.realworld:load_realworld",
    "vqa_rad": "medgym.data.loaders.vqa_rad:load_vqa_rad",
    "slake": "medgym.data.loaders.slake:load_slake",
    "pathvqa": "medgym.data.loaders.pathvqa:load_pathvqa",
    "pmc_vqa": "medgym.data.loaders.pmc_vqa:load_pmc_vqa",
    "m3d_vqa": "medgym.data.loaders.m3d_vqa:load_m3d_vqa",
    "omnimedvqa": "medgym.data.loaders.omnimedvqa:load_omnimedvqa",
    "generic": "medgym.data.loaders.generic:load_generic",
    "hf_disk": "medgym.data.loaders.hf_disk:load_hf_disk",
}


def register_dataset(name: str, loader: str | Loader) -> None:
    """Register ``loader`` (callable or ``"module:function"``) under ``name``."""
    DATASETS[name] = loader


def _loader(name: str) -> Loader:
    entry = DATASETS.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown dataset `{name}`{did_you_mean(name, DATASETS)}; "
            f"known: {', '.join(sorted(DATASETS))}"
        )
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        DATASETS[name] = entry
    return entry


def _matches(value: str | None, wanted: str | Sequence[str] | None) -> bool:
    if wanted is None:
        return True
    options = [wanted] if isinstance(wanted, str) else list(wanted)
    return value is not None and value.lower() in {w.lower() for w in options}


def _loader_options(loader: Loader) -> list[str] | None:
    """The keywords ``loader`` takes; ``None`` when it takes any (``**kwargs``) or cannot say."""
    import inspect

    try:
        params = inspect.signature(loader).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def loader_takes(name: str, option: str) -> bool:
    """Whether dataset ``name``'s loader takes the keyword ``option`` (e.g. ``num_samples``).

    Raises:
        ConfigError: Unknown dataset name.
    """
    known = _loader_options(_loader(name))
    return known is None or option in known


def _check_loader_kwargs(name: str, loader: Loader, call: Mapping[str, Any]) -> None:
    """An option the loader does not take is a ConfigError naming it (not a TypeError)."""
    known = _loader_options(loader)
    if known is None:
        return
    for key in call:
        if key not in known:
            raise ConfigError(
                f"dataset `{name}` takes no option `{key}`{did_you_mean(key, known)}; "
                f"its options: {', '.join(known) or 'none'}"
            )


def _warn_duplicate_ids(name: str, samples: Sequence[Sample]) -> None:
    """Log how many samples share an id (episodes are looked up by id: the later ones hide)."""
    seen: set[str] = set()
    dups = []
    for s in samples:
        if s.id in seen:
            dups.append(s.id)
        seen.add(s.id)
    if dups:
        logger.warning(
            "dataset `%s`: %d sample(s) repeat an earlier id (first: %r); tools that pick "
            "samples by id (env reset options, the TRL environment) will refuse or hide them",
            name, len(dups), dups[0],
        )  # fmt: skip


def load(
    name: str,
    *,
    root: str | Path | None = None,
    split: str | None = None,
    language: str | Sequence[str] | None = None,
    answer_type: str | None = None,
    modality: str | Sequence[str] | None = None,
    limit: int | None = None,
    **kwargs: Any,
) -> list[Sample]:
    """Load a dataset by name and filter it.

    Args:
        name: Registered dataset name (see :data:`DATASETS`).
        root: Folder of a downloaded release (public datasets); ignored by bundled sets.
        split: Split name; each loader documents its splits.
        language: Keep samples whose ``meta["language"]`` is one of these (SLAKE: ``en``/``zh``).
        answer_type: ``"closed"`` or ``"open"``.
        modality: Keep samples of these modalities (case-insensitive).
        limit: Keep at most this many samples (after filtering).
        **kwargs: Passed to the loader (e.g. ``num_samples``, ``seed`` for ``synthetic``).

    Returns:
        The samples, in the dataset's order.

    Raises:
        ConfigError: Unknown dataset name or bad filter value.
        DatasetError: The files cannot be read.
    """
    if answer_type not in (None, "closed", "open"):
        raise ConfigError(f"answer_type must be 'closed' or 'open'; got {answer_type!r}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0; got {limit}")
    loader = _loader(name)
    call: dict[str, Any] = dict(kwargs)
    if root is not None:
        call["root"] = Path(root)
    if split is not None:
        call["split"] = split
    _check_loader_kwargs(name, loader, call)
    samples = loader(**call)
    _warn_duplicate_ids(name, samples)
    out = [
        s
        for s in samples
        if _matches(s.meta.get("language"), language)
        and (answer_type is None or s.answer_type == answer_type)
        and _matches(s.modality, modality)
    ]
    return out[:limit] if limit is not None else out
