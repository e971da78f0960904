"""The first GPU run of the verl path, prepared: a model to train and the report of the run.

``training/gpu_smoke.sh`` (``run_verl.py --smoke``) builds :data:`SMOKE_MODEL`, a randomly
initialised Qwen2.5-VL larger than the CPU tiny model (so sequence lengths and memory are
realistic for the GPU path), trains it for a few GRPO steps with the ``grpo_smoke`` config,
and :func:`smoke_report` turns verl's file logger and medgym's group records into
``smoke.json``: per step the reward, tool-call rate, response length, generation tokens/s,
step time and peak GPU memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medgym.agents.tiny_vlm.builder import TinyVLMConfig
from medgym.errors import ConfigError

__all__ = ["SMOKE_MODEL", "STEP_KEYS", "build_smoke_model", "read_verl_log", "smoke_report"]

logger = logging.getLogger(__name__)

#: About 20M parameters: big enough to exercise vLLM's and FSDP's GPU paths at a realistic
#: sequence length, small enough to build in seconds and train in minutes.
SMOKE_MODEL = TinyVLMConfig(
    hidden_size=512,
    num_layers=4,
    num_heads=8,
    intermediate_size=1536,
    vision_hidden_size=256,
    vision_depth=4,
)

#: smoke.json column -> the verl metric it is read from (first one present wins).
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "reward": ("critic/score/mean", "critic/rewards/mean"),
    "response_length": ("response_length/mean",),
    "step_seconds": ("timing_s/step",),
    "generation_seconds": ("timing_s/gen",),
    "generation_ms_per_token": ("timing_per_token_ms/gen",),
    "peak_gpu_memory_gb": ("perf/max_memory_allocated_gb",),
    "throughput_tokens_per_s_per_gpu": ("perf/throughput",),
}


def build_smoke_model(out: Path, config: TinyVLMConfig = SMOKE_MODEL) -> Path:
    """Build the smoke model at ``out``, with a processor vLLM can load where possible.

    The tiny builder saves medgym's image-only processor (no torchvision needed); vLLM loads
    ``AutoProcessor`` by class name in its own processes, so where torchvision is installed
    (GPU nodes with vLLM) the folder is re-saved with the stock ``Qwen2_5_VLProcessor``.
    """
    from medgym.agents.tiny_vlm import build_tiny_vlm

    path = build_tiny_vlm(out, config)
    try:
        export_stock_processor(path)
    except ImportError as e:
        logger.warning("kept medgym's image-only processor (%s); vLLM needs torchvision", e)
    return path


def export_stock_processor(path: Path) -> None:
    """Re-save the model's processor as transformers' stock ``Qwen2_5_VLProcessor``.

    Raises:
        ImportError: torchvision (needed by the stock video processor) is not installed.
    """
    import torchvision  # noqa: F401  # the stock video processor needs it
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Qwen2VLImageProcessor.from_pretrained(path)
    template = (path / "chat_template.jinja").read_text(encoding="utf-8")
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=template,
    )
    processor.save_pretrained(path)


def read_verl_log(path: Path) -> list[dict[str, Any]]:
    """The records of verl's file logger (``{"step", "data"}`` a line), in step order.

    Raises:
        ConfigError: The file is missing or a line is not a verl record.
    """
    if not path.is_file():
        raise ConfigError(f"no verl metrics at {path} (trainer.logger needs `file`)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if not isinstance(rec, Mapping) or "step" not in rec or "data" not in rec:
            raise ConfigError(f"{path}:{n}: expected a verl file-logger record {{step, data}}")
        rows.append({"step": int(rec["step"]), **dict(rec["data"])})
    return sorted(rows, key=lambda r: r["step"])


def _first(data: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def smoke_report(verl_log: Path, metrics_dir: Path | None = None) -> dict[str, Any]:
    """Per-step figures of a smoke run (what ``smoke.json`` holds).

    Args:
        verl_log: verl's file-logger JSONL (``VERL_FILE_LOGGER_PATH``).
        metrics_dir: medgym's group records (``medgym.metrics_dir``) for the tool-call rate.

    Returns:
        ``{"steps": [{step, reward, tool_call_rate, response_length, generation_tokens_per_s,
        step_seconds, peak_gpu_memory_gb, ...}], "ok": bool}``; ``ok`` is true when every
        step has a finite reward.
    """
    tools: dict[int, float | None] = {}
    if metrics_dir is not None and Path(metrics_dir).is_dir():
        from medgym.integrations.verl.metrics import read_records, summarize

        for group in summarize(read_records(metrics_dir)):
            if not group["validate"]:
                tools[int(group["step"])] = group.get("tool_call_rate")
    steps = []
    for data in read_verl_log(verl_log):
        row: dict[str, Any] = {"step": data["step"]}
        for name, keys in STEP_KEYS.items():
            row[name] = _first(data, keys)
        ms = row["generation_ms_per_token"]
        row["generation_tokens_per_s"] = 1000.0 / ms if ms else None
        row["tool_call_rate"] = tools.get(data["step"])
        steps.append(row)
    ok = bool(steps) and all(isinstance(s["reward"], float) for s in steps)
    return {"ok": ok, "steps": steps}
