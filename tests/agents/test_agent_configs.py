from __future__ import annotations

from pathlib import Path

import pytest

from medgym.agents import EVRConfig, OpenAIPolicyConfig
from medgym.agents.hf_policy import SamplingConfig

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2] / "agents"
CONFIGS = sorted(ROOT.glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_agent_config_builds_its_config_classes(path) -> None:
    data = yaml.safe_load(path.read_text())
    built = []
    if "evr" in data:
        built.append(EVRConfig(**data["evr"]))
    if "endpoint" in data:
        built.append(OpenAIPolicyConfig(**data["endpoint"]))
    if "sampling" in data:
        built.append(SamplingConfig(**data["sampling"]))
    assert built, f"{path.name} has no evr, endpoint or sampling section"


def test_every_config_is_checked() -> None:
    assert len(CONFIGS) >= 5
