"""Prompt templates: the system prompt and the first user message of an episode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medgym.core.sample import Sample
from medgym.envs.profiles import ModelProfile
from medgym.errors import ConfigError, did_you_mean

__all__ = ["PROMPTS", "question_text", "system_prompt"]

PROMPTS: dict[str, dict[str, str]] = {
    "default": {
        "tools": (
            "You are a medical imaging expert. Answer the question about the image. Look "
            "closer when details are small: call a tool to zoom into a region, then reason "
            "about what you see. {box_hint} Think inside <think></think>, call tools inside "
            "<tool_call></tool_call>, and give the final answer inside <answer></answer>."
        ),
        "direct": (
            "You are a medical imaging expert. Answer the question about the image. Think "
            "inside <think></think> and give the final answer inside <answer></answer>."
        ),
    },
    "short": {
        "tools": "Answer the question. Zoom in with tools if needed. {box_hint} "
        "Final answer in <answer></answer>.",
        "direct": "Answer the question. Final answer in <answer></answer>.",
    },
}


def system_prompt(
    profile: ModelProfile, schemas: Sequence[dict[str, Any]], *, template: str = "default"
) -> str:
    """The system prompt: instructions, plus the tool block where the family expects it."""
    if template not in PROMPTS:
        raise ConfigError(
            f"unknown prompt template `{template}`{did_you_mean(template, PROMPTS)}; "
            f"known: {', '.join(PROMPTS)}"
        )
    kind = "tools" if schemas else "direct"
    text = PROMPTS[template][kind].format(box_hint=profile.box_hint)
    if schemas and profile.tools_in_system_prompt:
        text = f"{text}\n\n{profile.tools_block(schemas)}"
    return text


def question_text(sample: Sample) -> str:
    """The question, with lettered options for multiple-choice items."""
    if not sample.options:
        return sample.question
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    opts = "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(sample.options))
    return f"{sample.question}\nOptions:\n{opts}\nAnswer with the option's text."
