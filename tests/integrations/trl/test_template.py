"""The response schema parses medgym's tool calls; the template renders them prefix-preservingly."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")


def test_prepared_tiny_processor_parses_tool_calls(trl_warm_dir) -> None:
    from transformers import AutoProcessor
    from transformers.utils.chat_parsing_utils import recursive_parse
    from trl.chat_template_utils import is_chat_template_prefix_preserving, supports_tool_calling

    from medgym.agents.tiny_vlm.processor import register_processor
    from medgym.integrations.trl import prepare_processor

    register_processor()
    proc = prepare_processor(AutoProcessor.from_pretrained(trl_warm_dir))
    assert supports_tool_calling(proc)
    assert is_chat_template_prefix_preserving(proc)
    text = (
        '<think>look</think>\n<tool_call>\n{"name": "zoom_in", "arguments": '
        '{"bbox_2d": [1, 2, 30, 40]}}\n</tool_call><|im_end|>'
    )
    msg = recursive_parse(text, proc.tokenizer.response_schema)
    assert msg["content"] == "<think>look</think>"
    call = msg["tool_calls"][0]["function"]
    assert call == {"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 30, 40]}}
    answer = recursive_parse("<answer>mass</answer><|im_end|>", proc.tokenizer.response_schema)
    assert answer["content"] == "<answer>mass</answer>" and not answer.get("tool_calls")


def test_per_prompt_image_fields_survive_trls_merge_and_split(trl_warm_dir) -> None:
    """TRL 1.16 tokenizes each environment prompt alone (no ``return_tensors``), concatenates
    the image fields only when they are torch tensors, and later splits them by
    ``image_grid_thw.prod(-1)``. With numpy fields that split crashed on the first tool turn
    without a new image (GRPO step 2 of the demo); the processor now returns tensors."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoProcessor
    from trl.trainer.utils import split_pixel_values_by_grid

    from medgym.agents.tiny_vlm.processor import register_processor

    register_processor()
    proc = AutoProcessor.from_pretrained(trl_warm_dir)
    fields: dict[str, list] = {}
    sizes = ((56, 56), (84, 56))
    for w, h in sizes:
        img = Image.fromarray(np.zeros((h, w, 3), np.uint8))
        conv = [{"role": "user", "content": [{"type": "image", "image": img},
                                             {"type": "text", "text": "where?"}]}]  # fmt: skip
        tok = proc.apply_chat_template(
            conversation=[conv], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        for k, v in tok.items():
            if k not in ("input_ids", "attention_mask"):
                fields.setdefault(k, []).append(v)
    # TRL's merge rule (grpo_trainer._tokenize_prompts with environments)
    merged = {
        k: torch.cat(v) if isinstance(v[0], torch.Tensor) else [r for p in v for r in p]
        for k, v in fields.items()
    }
    assert isinstance(merged["image_grid_thw"], torch.Tensor)
    split = split_pixel_values_by_grid({**merged, "num_images": [1, 1]})
    rows = [int(t.prod()) for t in merged["image_grid_thw"]]
    assert [p.shape[0] for p in split["pixel_values"]] == rows
