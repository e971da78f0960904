"""Parquet rows in verl's schema, read back by verl's own RLHFDataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("verl")

from medgym.core.sample import Sample
from medgym.errors import ConfigError
from medgym.integrations.verl import AGENT_NAME
from medgym.integrations.verl.prepare import main, prepare_dataset, sample_to_row


def test_row_schema(samples: list[Sample]) -> None:
    row = sample_to_row(samples[0], 7, data_source="synthetic")
    assert row["data_source"] == "synthetic"
    assert row["agent_name"] == AGENT_NAME
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][1]["content"].count("<image>") == len(row["images"]) == 1
    assert row["images"][0]["bytes"].startswith(b"\x89PNG")
    assert row["reward_model"] == {"style": "rule", "ground_truth": samples[0].answer}
    extra = row["extra_info"]
    assert extra["index"] == 7
    assert Sample.model_validate_json(extra["sample"]) == samples[0]
    assert set(extra["tools_kwargs"]) == {"zoom_in", "crop", "reground"}


def test_label_free_split(tmp_path: Path, samples: list[Sample]) -> None:
    train, val = prepare_dataset(
        samples, tmp_path, data_source="s", val_fraction=0.25, drop_labels=True
    )
    tr, va = pd.read_parquet(train), pd.read_parquet(val)
    assert (len(tr), len(va)) == (3, 1)
    assert all(r["style"] == "label_free" and r["ground_truth"] is None for r in tr.reward_model)
    ids = {json.loads(e["sample"])["id"] for e in [*tr.extra_info, *va.extra_info]}
    assert ids == {s.id for s in samples}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"val_fraction": 0.0}, "val_fraction", id="zero-val"),
        pytest.param({"val_fraction": 1.0}, "val_fraction", id="all-val"),
    ],
)
def test_bad_split(tmp_path: Path, samples: list[Sample], kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        prepare_dataset(samples, tmp_path, data_source="s", **kwargs)


def test_one_sample_is_refused(tmp_path: Path, samples: list[Sample]) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        prepare_dataset(samples[:1], tmp_path, data_source="s")


def test_cli(tmp_path: Path) -> None:
    train, _ = main(
        [
            "--dataset",
            "synthetic",
            "--out",
            str(tmp_path),
            "--loader-kwargs",
            '{"num_samples": 3}',
            "--tools",
            "zoom_in",
        ]
    )
    row = pd.read_parquet(train).iloc[0]
    assert list(row.extra_info["tools_kwargs"].keys()) == ["zoom_in"]


def test_rlhf_dataset_reads_rows(parquet_dir: Path, tiny_processor: Any, tmp_path: Path) -> None:
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = OmegaConf.create(
        {"cache_dir": str(tmp_path), "filter_overlong_prompts": False, "max_prompt_length": 4096}
    )
    ds = RLHFDataset(
        str(parquet_dir / "train.parquet"), tiny_processor.tokenizer, cfg, processor=tiny_processor
    )
    assert len(ds) == 3
    item = ds[0]
    user = item["raw_prompt"][1]["content"]
    assert [c["type"] for c in user] == ["image", "text"]
    assert user[0]["image"].size == (448, 448)
    assert item["agent_name"] == AGENT_NAME
    assert "create_kwargs" in item["tools_kwargs"]["zoom_in"]
