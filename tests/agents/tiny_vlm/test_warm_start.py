from __future__ import annotations

import json

import pytest

from medgym.agents.tiny_vlm import TinyVLMConfig, WarmStartConfig, cache_dir, warm_start
from medgym.errors import ConfigError
from medgym.settings import reload_settings

pytest.importorskip("torch")


def test_warm_start_learns_and_is_cached(warm_dir) -> None:
    record = json.loads((warm_dir / "warm_start.json").read_text())
    assert record["steps"] >= 1
    assert record["view_steps"] == 40 * 3 // 8  # the default view stage ran first
    assert record["final_loss"] < record["first_loss"]
    # same settings again: the cached folder comes back without training
    cfg = WarmStartConfig(
        **{**record["config"], "model": TinyVLMConfig(**record["config"]["model"])}
    )
    stamp = (warm_dir / "model.safetensors").stat().st_mtime_ns
    assert warm_start(cfg, cache=warm_dir.parent) == warm_dir
    assert (warm_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_key_changes_with_every_setting() -> None:
    base = WarmStartConfig()
    keys = {
        base.key(),
        WarmStartConfig(seed=1).key(),
        WarmStartConfig(max_steps=10).key(),
        WarmStartConfig(model=TinyVLMConfig(hidden_size=32)).key(),
    }
    assert len(keys) == 4


def test_cache_dir_follows_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEDGYM_CACHE_DIR", str(tmp_path))
    reload_settings()
    assert cache_dir() == tmp_path
    monkeypatch.delenv("MEDGYM_CACHE_DIR")
    reload_settings()
    assert cache_dir().parts[-2:] == (".cache", "medgym")


@pytest.mark.parametrize(
    "kwargs",
    [{"num_samples": 0}, {"max_seconds": 0}, {"max_steps": 0}, {"lr": -1.0}, {"batch_size": 0}],
    ids=["no-samples", "no-time", "no-steps", "negative-lr", "no-batch"],
)
def test_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ConfigError):
        WarmStartConfig(**kwargs)


def test_collate_pads_right_and_concatenates_images() -> None:
    import torch

    from medgym.agents.tiny_vlm.warm_start import collate

    def ex(n, images):
        return {
            "input_ids": torch.arange(n).unsqueeze(0),
            "attention_mask": torch.ones(1, n, dtype=torch.long),
            "labels": torch.arange(n).unsqueeze(0),
            "pixel_values": torch.ones(4 * images, 3),
            "image_grid_thw": torch.tensor([[1, 2, 2]] * images),
        }

    batch = collate([ex(3, 1), ex(5, 2)], pad_id=99)
    assert batch["input_ids"].tolist() == [[0, 1, 2, 99, 99], [0, 1, 2, 3, 4]]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0]
    assert batch["labels"][0].tolist() == [0, 1, 2, -100, -100]
    assert batch["pixel_values"].shape == (12, 3) and batch["image_grid_thw"].shape == (3, 3)


def test_answer_weight_scales_only_the_answer_tokens() -> None:
    """_loss: weight 1 is the model's own mean loss; weight w counts each answer token w times."""
    import torch

    from medgym.agents.tiny_vlm.warm_start import _loss

    start, end = 5, 6
    labels = torch.tensor([[-100, 1, 2, start, 3, end, 7, -100]])
    logits = torch.randn(1, 8, 10)

    class Out:
        def __init__(self, loss: torch.Tensor | None = None) -> None:
            self.logits, self.loss = logits, loss

    def model(**batch: torch.Tensor) -> Out:
        ce = torch.nn.functional.cross_entropy(
            logits[0, :-1], batch.get("labels", labels)[0, 1:], ignore_index=-100
        )
        return Out(ce)

    per_token = torch.nn.functional.cross_entropy(
        logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="none"
    )
    valid = labels[0, 1:] != -100
    w = torch.ones(7)
    w[3] = 4.0  # predicting token 3, the one between <answer> and </answer>
    want = (per_token * w * valid).sum() / (w * valid).sum()
    got = _loss(model, {"input_ids": labels, "labels": labels}, (start, end), 4.0)
    assert torch.allclose(got, want)
    base = _loss(model, {"input_ids": labels, "labels": labels}, (start, end), 1.0)
    assert torch.allclose(base, per_token[valid].mean())
    # the perception stage: the answer token alone (position 3 predicts the token after <answer>)
    only = _loss(
        model, {"input_ids": labels, "labels": labels}, (start, end), 1.0, answer_only=True
    )
    assert torch.allclose(only, per_token[3])


def test_answer_only_steps_must_leave_a_format_stage() -> None:
    from medgym.agents.tiny_vlm import WarmStartConfig
    from medgym.errors import ConfigError

    with pytest.raises(ConfigError, match=r"answer_only_steps must be in \[0, max_steps\)"):
        WarmStartConfig(max_steps=100, answer_only_steps=100)
    assert (
        WarmStartConfig(max_steps=100, answer_only_steps=40).key()
        != WarmStartConfig(max_steps=100).key()
    )


def test_teacher_episodes_with_and_without_the_no_tool_half(tiny) -> None:
    """Each sample gives a tool episode and a no-tool one; no_tool_episodes=False keeps the first."""
    from medgym.agents.tiny_vlm.warm_start import sft_examples

    _, processor = tiny
    both = sft_examples(processor, 3, seed=0)
    tools_only = sft_examples(processor, 3, seed=0, no_tool_episodes=False)
    assert len(both) == 6 and len(tools_only) == 3
    # the tool episodes carry two images (the first view and the zoom), the no-tool ones one
    images = [int(e["image_grid_thw"].shape[0]) for e in both]
    assert images == [2, 1, 2, 1, 2, 1]
    assert [int(e["image_grid_thw"].shape[0]) for e in tools_only] == [2, 2, 2]
    assert WarmStartConfig(no_tool_episodes=False).key() != WarmStartConfig().key()


def test_single_view_examples_are_the_zoom_the_question_and_the_answer(tiny) -> None:
    """The perception stage's data: one image (the teacher's zoom), no tool call, the answer."""
    from medgym.agents.tiny_vlm.warm_start import single_view_examples

    _, processor = tiny
    examples = single_view_examples(processor, 3, seed=0)
    assert len(examples) == 3
    tok = processor.tokenizer
    for e in examples:
        assert int(e["image_grid_thw"].shape[0]) == 1
        text = tok.decode(e["input_ids"][0])
        assert "Options:\nA. yes\nB. no" in text and "<tool_response>" not in text
        trained = tok.decode(e["input_ids"][0][e["labels"][0] != -100])
        assert trained.startswith("<answer>") and "</answer>" in trained


def test_view_steps_must_leave_room_and_key_the_cache() -> None:
    with pytest.raises(ConfigError, match=r"view_steps must be in \[0, max_steps\)"):
        WarmStartConfig(max_steps=50, view_steps=50)
    assert WarmStartConfig(view_steps=100).key() != WarmStartConfig().key()


def test_view_lr_keys_the_cache_and_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="view_lr must be > 0"):
        WarmStartConfig(view_steps=10, view_lr=0.0)
    base = WarmStartConfig(view_steps=100)
    assert WarmStartConfig(view_steps=100, view_lr=1e-4).key() != base.key()
    # without a view stage its learning rate changes nothing, and the key says so
    assert WarmStartConfig(view_steps=0, view_lr=1e-4).key() == WarmStartConfig(view_steps=0).key()


def test_the_default_view_stage_is_three_eighths_of_the_steps() -> None:
    assert WarmStartConfig().view_stage_steps == 300
    assert WarmStartConfig(max_steps=40).view_stage_steps == 15
    assert WarmStartConfig(max_steps=40, view_steps=0).view_stage_steps == 0
    # the resolved stage is what the key holds: spelling the default out keeps the cache
    assert WarmStartConfig(view_steps=300).key() == WarmStartConfig().key()


def test_view_stage_has_its_own_schedule_then_episodes_restart_at_lr() -> None:
    from medgym.agents.tiny_vlm.warm_start import _stage_lr

    cfg = WarmStartConfig(max_steps=400, view_steps=100, view_lr=1e-4, lr=1e-3)
    view = [_stage_lr(cfg, k) for k in range(100)]
    episodes = [_stage_lr(cfg, k) for k in range(100, 400)]
    assert max(view) == pytest.approx(1e-4)  # the view stage peaks at view_lr
    assert view[-1] < 0.2e-4  # and decays before the episodes
    assert episodes[0] < 1e-4  # the episodes warm up again
    assert max(episodes) == pytest.approx(1e-3)
    plain = WarmStartConfig(max_steps=400, lr=1e-3)
    assert max(_stage_lr(plain, k) for k in range(400)) == pytest.approx(1e-3)
