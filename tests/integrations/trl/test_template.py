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
