"""Session fixtures: a short warm start of the tiny model and one 2-step GRPO run on CPU."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="session")
def trl_warm_dir(format_warm_dir):
    """The format-trained small model (root conftest): writes tool calls and answers."""
    pytest.importorskip("trl")
    return format_warm_dir
