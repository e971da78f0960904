from __future__ import annotations

import pytest

from medgym.errors import ConfigError
from medgym.eval.policies import make_policy, policy_label


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("scripted:pixel-reader", "pixel-reader"),
        ("hf:/models/tiny-vlm/", "tiny-vlm"),
        ("openai:http://127.0.0.1:8000/v1:qwen2.5-vl-7b", "qwen2.5-vl-7b"),
    ],
    ids=["scripted", "hf-path", "openai-url-with-port"],
)
def test_policy_label(spec: str, label: str) -> None:
    assert policy_label(spec) == label


def test_openai_spec_splits_url_and_model() -> None:
    pytest.importorskip("openai")
    policy = make_policy("openai:http://127.0.0.1:8000/v1:my-model")
    assert policy.name == "my-model"
    assert policy.config.base_url == "http://127.0.0.1:8000/v1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "spec",
    ["pixel-reader", "vllm:foo", "scripted:", "openai:my-model", "scripted:orcale"],
    ids=["no-kind", "unknown-kind", "empty-name", "openai-no-url", "scripted-typo"],
)
def test_bad_specs_raise(spec: str) -> None:
    with pytest.raises(ConfigError):
        make_policy(spec)
