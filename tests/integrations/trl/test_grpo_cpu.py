"""Two GRPO steps on CPU from the warm-started tiny model with the label-free reward."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def run(trl_warm_dir, tmp_path_factory):
    """Train 2 steps; record parameters before/after, every completion and the reward history."""
    import torch

    from medgym.integrations.trl import MedGymArguments, build_trainer, default_grpo_config
    from medgym.integrations.trl.checkpoints import save_trained

    out = tmp_path_factory.mktemp("grpo")
    margs = MedGymArguments(model=str(trl_warm_dir), num_samples=8, reward="label_free")
    gargs = default_grpo_config(
        out, max_steps=2, num_generations=4, per_device_train_batch_size=4, learning_rate=1e-3,
        save_strategy="steps", save_steps=2,
    )  # fmt: skip
    trainer, reward = build_trainer(margs, gargs)
    seen: list[list] = []
    inner = trainer.reward_funcs[0]

    def spy(completions, **kw):
        seen.extend(completions)
        return inner(completions, **kw)

    trainer.reward_funcs[0] = spy
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    final = save_trained(trainer, out / "final")
    return {
        "out": out,
        "final": final,
        "trainer": trainer,
        "history": reward.history,
        "before": before,
        "after": after,
        "completions": seen,
        "log": trainer.state.log_history,
        "jsonl": reward.sink.read(),
        "torch": torch,
    }


def test_rewards_vary_within_a_group_then_parameters_change(run) -> None:
    torch = run["torch"]
    assert len(run["history"]) == 2
    spreads = [max(r["rewards"][i : i + 4]) - min(r["rewards"][i : i + 4])
               for r in run["history"] for i in range(0, len(r["rewards"]), 4)]  # fmt: skip
    assert max(spreads) > 0, "every group scored its rollouts equally: no GRPO signal"
    changed = [n for n, p in run["after"].items() if not torch.equal(p.detach(), run["before"][n])]
    assert changed, "no parameter changed after 2 GRPO steps"


def test_every_logged_reward_part_is_finite(run) -> None:
    for rec in run["jsonl"]:
        values = {k: v for k, v in rec.items() if not isinstance(v, list) and k != "step"}
        assert {"reward", "tool_call_rate", "part/accuracy", "part/penalty"} <= set(values)
        assert all(math.isfinite(v) for v in values.values())
        assert all(math.isfinite(r) for r in rec["rewards"])
    logged = [log for log in run["log"] if "medgym/reward" in log]
    assert logged and all(
        math.isfinite(float(v)) for log in logged for k, v in log.items() if k.startswith("medgym/")
    )


def test_tool_call_puts_the_crop_into_the_next_turn(run) -> None:
    with_tool = [c for c in run["completions"] if any(m["role"] == "tool" for m in c)]
    assert with_tool, "no rollout called a tool"
    images = 0
    for completion in with_tool:
        for k, msg in enumerate(completion):
            if msg["role"] != "tool" or not isinstance(msg["content"], list):
                continue
            crops = [p for p in msg["content"] if p.get("type") == "image"]
            images += len(crops)
            if crops and k + 1 < len(completion):
                assert completion[k + 1]["role"] == "assistant"  # generated after seeing it
    assert images > 0, "no tool reply carried a crop"


def test_saved_checkpoints_record_the_profile_and_task_eval_needs(run) -> None:
    """A checkpoint of the run is evaluated as it was trained (the profile, the tiny task).

    Before, ``GRPOTrainer`` saved weights only, and ``medgym eval --policy hf:<it>`` used the
    ``qwen2.5-vl`` profile and the default data mix: the tiny agent answered nothing.
    """
    from medgym.agents.tiny_vlm.builder import load_checkpoint_task
    from medgym.envs.profiles import load_checkpoint_profile
    from medgym.eval.cli_commands import task_settings

    for folder in (run["out"] / "checkpoint-2", run["final"]):
        assert (folder / "model.safetensors").is_file()
        profile = load_checkpoint_profile(folder)
        assert profile is not None and profile.name == "tiny-vlm"
        assert load_checkpoint_task(folder) == "synthetic"
        data, load_options, session_options, _ = task_settings(f"hf:{folder}", None, None)
        assert data == "synthetic:test" and load_options and session_options


def test_save_trained_needs_a_trainer_that_knows_what_to_record(run) -> None:
    from medgym.errors import ConfigError
    from medgym.integrations.trl.checkpoints import CheckpointRecords, save_trained

    trainer = run["trainer"]
    records = [c for c in trainer.callback_handler.callbacks if isinstance(c, CheckpointRecords)]
    trainer.remove_callback(records[0])
    try:
        with pytest.raises(ConfigError, match="CheckpointRecords"):
            save_trained(trainer, run["out"] / "unrecorded")
    finally:
        trainer.add_callback(records[0])


def test_the_tiny_models_vision_tower_is_kept_out_of_training(run) -> None:
    """A tiny-vlm checkpoint trains its language model only (``freeze_vision`` unset: on)."""
    torch = run["torch"]
    vision = [n for n in run["before"] if ".visual." in f".{n}"]
    assert vision, "no vision tower parameters found"
    assert all(torch.equal(run["after"][n].detach(), run["before"][n]) for n in vision)
    assert not any(run["after"][n].requires_grad for n in vision)


def test_freeze_vision_false_trains_the_tower(trl_warm_dir, tmp_path) -> None:
    from medgym.integrations.trl import MedGymArguments, build_trainer, default_grpo_config

    margs = MedGymArguments(model=str(trl_warm_dir), num_samples=4, freeze_vision=False)
    trainer, _ = build_trainer(margs, default_grpo_config(tmp_path, max_steps=1))
    vision = [p for n, p in trainer.model.named_parameters() if ".visual." in f".{n}"]
    assert vision and all(p.requires_grad for p in vision)


def test_the_trainer_never_samples_a_vision_special_token(run) -> None:
    """TRL suppresses only the image token; a sampled video or vision-start token killed a run.

    A completion holding ``<|video_pad|>`` marks a video the batch has no grid for, and the
    loss's forward pass fails (``get_rope_index``: ``'NoneType' object is not an iterator``).
    """
    trainer = run["trainer"]
    cfg = trainer.model.config
    wanted = {cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id,
              cfg.vision_end_token_id}  # fmt: skip
    assert wanted <= set(trainer.generation_config.suppress_tokens)
    tok = trainer.processing_class.tokenizer
    sampled = {t for c in run["completions"] for m in c if m["role"] == "assistant"
               for t in tok(str(m.get("content", "")))["input_ids"]}  # fmt: skip
    assert not sampled & wanted


def test_suppressed_tokens_keep_the_users_own() -> None:
    from types import SimpleNamespace

    from medgym.integrations.trl.train import suppress_vision_tokens

    model = SimpleNamespace(
        config=SimpleNamespace(image_token_id=5, video_token_id=6, vision_start_token_id=3),
        generation_config=SimpleNamespace(suppress_tokens=[9]),
    )
    gargs = SimpleNamespace(generation_kwargs={"suppress_tokens": [42], "top_k": 5})
    assert suppress_vision_tokens(gargs, model) == [3, 5, 6, 9, 42]
    assert gargs.generation_kwargs["top_k"] == 5
