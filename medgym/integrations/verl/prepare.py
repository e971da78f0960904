"""Any medgym dataset -> train/val parquet in verl's ``RLHFDataset`` schema.

One row per sample::

    data_source   the dataset name
    prompt        [system, user] chat messages; one ``<image>`` placeholder per image
    images        [{"bytes": PNG of the first view}] (what the policy sees at turn 0)
    reward_model  {"style": "rule" | "label_free", "ground_truth": answer or None}
    extra_info    {"index", "sample" (the Sample as JSON, with its ImageRefs), "tools_kwargs"}
                  (no ``interaction_kwargs``: parquet cannot store an empty struct and
                  RLHFDataset defaults it to ``{}``)
    agent_name    the medgym agent loop (:data:`~medgym.integrations.verl.AGENT_NAME`)

The sample JSON carries the ``ImageRef`` so tools that need the original high-bit-depth pixels
(``window``) load them; verl's ``image_data`` holds only 8-bit renders. It is passed to every
tool through ``tools_kwargs[name]["create_kwargs"]["sample"]``.

Run ``python -m medgym.integrations.verl.prepare --dataset synthetic --out data/verl``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medgym.core.sample import Sample
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import DEFAULT_PROFILE
from medgym.envs.prompts import question_text
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError
from medgym.integrations.verl import AGENT_NAME

__all__ = ["png_bytes", "prepare_dataset", "sample_to_row", "write_parquet"]

logger = logging.getLogger(__name__)

#: The placeholder verl's RLHFDataset splits prompts on (one per entry of ``images``).
VERL_IMAGE_TOKEN = "<image>"


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG encoding of an ``(H, W, 3)`` uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return buf.getvalue()


def sample_to_row(
    sample: Sample,
    index: int,
    *,
    data_source: str,
    config: SessionConfig | None = None,
    profile: str = DEFAULT_PROFILE,
    agent_name: str = AGENT_NAME,
) -> dict[str, Any]:
    """One verl row for ``sample`` (see the module docstring for the columns).

    The system prompt and the first views come from an :class:`EpisodeSession`, so the parquet
    shows the model exactly what the gym env shows it.
    """
    session = EpisodeSession(sample, config=config, profile=profile)
    placeholders = VERL_IMAGE_TOKEN * len(sample.images)
    sample_json = sample.model_dump_json()
    create = {"create_kwargs": {"sample": sample_json}}
    return {
        "data_source": data_source,
        "prompt": [
            {"role": "system", "content": session.system_prompt},
            {"role": "user", "content": f"{placeholders}{question_text(sample)}"},
        ],
        "images": [{"bytes": png_bytes(session.pixels(i))} for i in range(len(sample.images))],
        "reward_model": {
            "style": "rule" if sample.labelled else "label_free",
            "ground_truth": sample.answer,
        },
        "extra_info": {
            "index": index,
            "sample": sample_json,
            "tools_kwargs": {name: create for name in session.config.tools},
        },
        "agent_name": agent_name,
    }


def write_parquet(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows to one parquet file (parents created)."""
    import pandas as pd

    if not rows:
        raise ConfigError(f"no rows to write to {path}; the dataset selection is empty")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(rows)).to_parquet(out, index=False)
    return out


def prepare_dataset(
    samples: Sequence[Sample],
    out_dir: str | Path,
    *,
    data_source: str,
    val_fraction: float = 0.1,
    seed: int = 0,
    config: SessionConfig | None = None,
    profile: str = DEFAULT_PROFILE,
    drop_labels: bool = False,
    agent_name: str = AGENT_NAME,
) -> tuple[Path, Path]:
    """Split samples into ``train.parquet`` and ``val.parquet`` under ``out_dir``.

    Args:
        samples: The samples (any medgym dataset).
        out_dir: Output folder.
        data_source: Written to the ``data_source`` column.
        val_fraction: Share of samples for validation (at least one sample each side).
        seed: Shuffle seed of the split.
        config: Session config (tools, budgets) the rows are rendered with.
        profile: Model profile name.
        drop_labels: Remove the answers (a label-free run).
        agent_name: verl agent loop of every row (``tool_agent``: verl's stock loop with the
            BaseTool adapters of ``tools/verl_*.yaml``).

    Returns:
        The train and val parquet paths.

    Raises:
        ConfigError: Fewer than two samples, or ``val_fraction`` outside (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1); got {val_fraction}")
    if len(samples) < 2:
        raise ConfigError(f"need at least 2 samples for a train/val split; got {len(samples)}")
    if drop_labels:
        samples = [s.model_copy(update={"answer": None}) for s in samples]
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = min(max(1, round(len(samples) * val_fraction)), len(samples) - 1)
    rows = [
        sample_to_row(
            samples[int(i)],
            int(i),
            data_source=data_source,
            config=config,
            profile=profile,
            agent_name=agent_name,
        )
        for i in order
    ]
    out = Path(out_dir)
    train = write_parquet(rows[n_val:], out / "train.parquet")
    val = write_parquet(rows[:n_val], out / "val.parquet")
    logger.info("wrote %d train and %d val rows to %s", len(rows) - n_val, n_val, out)
    return train, val


def main(argv: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Command line: ``python -m medgym.integrations.verl.prepare --dataset NAME --out DIR``."""
    from medgym.data import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="synthetic", help="registered medgym dataset name")
    p.add_argument("--out", required=True, help="output folder for train/val parquet")
    p.add_argument("--root", default=None, help="dataset root (public datasets)")
    p.add_argument("--split", default="train", help="split to train on (default: train)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default=DEFAULT_PROFILE)
    p.add_argument("--tools", default=None, help="comma-separated tool names")
    p.add_argument("--label-free", action="store_true", help="drop the answers")
    p.add_argument("--agent-name", default=AGENT_NAME, help="verl agent loop of every row")
    p.add_argument("--loader-kwargs", default="{}", help="JSON kwargs for the loader")
    a = p.parse_args(argv)
    samples = load(
        a.dataset, root=a.root, split=a.split, limit=a.limit, **json.loads(a.loader_kwargs)
    )
    config = SessionConfig(tools=tuple(a.tools.split(","))) if a.tools else None
    return prepare_dataset(
        samples,
        a.out,
        data_source=a.dataset,
        val_fraction=a.val_fraction,
        seed=a.seed,
        config=config,
        profile=a.profile,
        drop_labels=a.label_free,
        agent_name=a.agent_name,
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
