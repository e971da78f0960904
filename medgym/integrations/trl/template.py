"""Chat template and response schema that let TRL run medgym's Hermes-style tool calls.

TRL parses generated tool calls with the tokenizer's response schema and renders tool turns with
the chat template. ``trl.chat_template_utils.add_response_schema`` does not know the Qwen2.5-VL
template, so :func:`prepare_processor` sets both: a schema that reads ``<tool_call>{json}
</tool_call>`` blocks (the format every medgym profile of the Qwen family speaks) and, when the
model's own template drops ``tool_calls`` (the tiny model's does), a template that renders them.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["HERMES_RESPONSE_SCHEMA", "TOOL_CHAT_TEMPLATE", "prepare_processor"]

logger = logging.getLogger(__name__)

_CALL = {
    "x-parser": "json",
    "x-parser-args": {"transform": "{type: 'function', function: @}"},
    "type": "object",
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "object", "additionalProperties": {}},
            },
        },
    },
}

#: Response schema for Hermes-style turns: free text (``<answer>`` included) then tool calls.
HERMES_RESPONSE_SCHEMA: dict[str, Any] = {
    "x-regex": (
        r"^(?P<content>(?:(?!<tool_call>)[\s\S])*?)(?:\n(?=<tool_call>))?"
        r"(?=(?:<tool_call>|<\|im_end\|>|$))"
        r"(?P<tool_calls>(?:<tool_call>(?:(?!</tool_call>)[\s\S])+</tool_call>\s*)+)?"
        r"\s*(?:<\|im_end\|>|<\|endoftext\|>|$)"
    ),
    "type": "object",
    "properties": {
        "role": {"const": "assistant"},
        "content": {"type": "string"},
        "tool_calls": {
            "type": "array",
            "x-regex-iterator": r"<tool_call>\s*(.+?)\s*</tool_call>",
            "items": _CALL,
        },
    },
}

#: Qwen2.5-VL-style template that renders assistant ``tool_calls`` as ``<tool_call>`` blocks
#: and tool turns as user turns (medgym's Qwen2.5-VL profile convention). Prefix-preserving.
TOOL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% set role = 'user' if message['role'] == 'tool' else message['role'] %}"
    "<|im_start|>{{ role }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{% for call in message['tool_calls'] %}{% set fn = call['function'] %}"
    '<tool_call>{"name": "{{ fn["name"] }}", "arguments": {{ fn["arguments"] | tojson }}}'
    "</tool_call>{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer(processing_class: Any) -> Any:
    return getattr(processing_class, "tokenizer", processing_class)


def prepare_processor(processing_class: Any, *, force_template: bool = False) -> Any:
    """Make a tokenizer or processor ready for TRL's tool loop (in place; also returned).

    Sets :data:`HERMES_RESPONSE_SCHEMA` on the tokenizer unless it already has a response
    schema or template, and installs :data:`TOOL_CHAT_TEMPLATE` when the current template does
    not render tool calls (checked with TRL's own ``supports_tool_calling``) or when
    ``force_template`` is set.

    Args:
        processing_class: A tokenizer or a processor with a ``tokenizer``.
        force_template: Replace the chat template even if it already renders tool calls.

    Returns:
        The same object.
    """
    from trl.chat_template_utils import supports_tool_calling

    tok = _tokenizer(processing_class)
    if (
        getattr(tok, "response_template", None) is None
        and getattr(tok, "response_schema", None) is None
    ):
        tok.response_schema = HERMES_RESPONSE_SCHEMA
    if force_template or not supports_tool_calling(processing_class):
        logger.info("chat template does not render tool calls; installing medgym's Hermes template")
        processing_class.chat_template = TOOL_CHAT_TEMPLATE
        if tok is not processing_class:
            tok.chat_template = TOOL_CHAT_TEMPLATE
    return processing_class
