"""smoke.json from verl's file logger and medgym's group records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medgym.errors import ConfigError
from medgym.integrations.metrics import MetricsSink
from medgym.integrations.verl.smoke import SMOKE_MODEL, read_verl_log, smoke_report


def _verl_log(path: Path, steps: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"step": i + 1, "data": d}) + "\n" for i, d in
                            enumerate(steps)))  # fmt: skip
    return path


def test_report_reads_every_figure_per_step(tmp_path: Path) -> None:
    log = _verl_log(tmp_path / "verl.jsonl", [
        {"critic/score/mean": 0.25, "response_length/mean": 310.0, "timing_s/step": 41.0,
         "timing_s/gen": 20.0, "timing_per_token_ms/gen": 0.5,
         "perf/max_memory_allocated_gb": 21.5, "perf/throughput": 900.0},
        {"critic/rewards/mean": 0.5, "response_length/mean": 280.0, "timing_s/step": 30.0},
    ])  # fmt: skip
    sink = MetricsSink(tmp_path / "m" / "groups-host-1.jsonl")
    for step, rate in ((1, 0.5), (1, 1.0), (2, 0.0)):
        sink.write({"uid": "u", "global_steps": step, "validate": False, "tool_call_rate": rate})
    report = smoke_report(log, tmp_path / "m")
    first, second = report["steps"]
    assert report["ok"]
    assert first["reward"] == 0.25 and first["tool_call_rate"] == 0.75
    assert first["generation_tokens_per_s"] == pytest.approx(2000.0)
    assert first["peak_gpu_memory_gb"] == 21.5 and first["step_seconds"] == 41.0
    assert second["reward"] == 0.5 and second["tool_call_rate"] == 0.0
    assert second["generation_tokens_per_s"] is None and second["peak_gpu_memory_gb"] is None


def test_a_step_without_reward_is_not_ok(tmp_path: Path) -> None:
    log = _verl_log(tmp_path / "verl.jsonl", [{"response_length/mean": 10.0}])
    assert smoke_report(log)["ok"] is False


@pytest.mark.parametrize(("text", "match"), [(None, "no verl metrics"),
                                             ('{"x": 1}\n', "file-logger record")])  # fmt: skip
def test_bad_logs_are_named(tmp_path: Path, text: str | None, match: str) -> None:
    path = tmp_path / "verl.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_verl_log(path)


def test_smoke_model_is_larger_than_the_tiny_one() -> None:
    from medgym.agents.tiny_vlm.builder import TinyVLMConfig

    tiny = TinyVLMConfig()
    assert SMOKE_MODEL.hidden_size >= 4 * tiny.hidden_size
    assert SMOKE_MODEL.hidden_size % SMOKE_MODEL.num_heads == 0


def test_the_dry_run_server_gives_images_their_2d_positions(tmp_path, small_model) -> None:
    """ModelServer (the CPU stand-in for vLLM) must mark image tokens, or Qwen2.5-VL falls back
    to 1D positions and the dry run exercises a model the GPU run never sees."""
    import asyncio

    from PIL import Image

    from medgym.agents.tiny_vlm import build_tiny_vlm, load_tiny_vlm
    from medgym.integrations.verl.testing import ModelServer

    model, processor = load_tiny_vlm(build_tiny_vlm(tmp_path / "m", small_model))
    seen: list = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw.get("position_ids")), with_kwargs=True
    )
    try:
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]
        text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        image = Image.new("RGB", (56, 56))
        ids = processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
        server = ModelServer(model, processor, max_new_tokens=1)
        asyncio.run(
            server.generate(
                request_id="r", prompt_ids=ids, sampling_params={"temperature": 1.0},
                image_data=[image],
            )
        )  # fmt: skip
    finally:
        hook.remove()
    positions = seen[0]
    assert positions is not None and positions.shape[0] >= 3
    assert bool((positions[-2] != positions[-1]).any())  # height and width rows differ
