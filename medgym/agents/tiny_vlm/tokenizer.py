"""A byte-level BPE tokenizer for the tiny VLM, trained offline on medgym's own text.

The corpus is what the tiny model will read and write on the ``synthetic`` set: system prompts,
questions, oracle tool calls, tool results and answers. Qwen's control and vision tokens are added
as special tokens so the chat template and the Qwen2.5-VL image-token logic work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from medgym.envs.profiles import DEFAULT_PROFILE, ModelProfile

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "TEXT_TOKENS", "build_tokenizer", "corpus"]

#: Control and vision tokens (Qwen names); the first is padding, ``<|im_end|>`` ends a turn.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: Markup the model writes, kept as single tokens (decoded as text, like Qwen's ``<tool_call>``).
TEXT_TOKENS = ("<tool_call>", "</tool_call>", "<answer>", "</answer>", "<think>", "</think>")

#: Qwen2.5-VL-style template: ``<|im_start|>role\n...<|im_end|>``, one vision block per image.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% set role = 'user' if message['role'] == 'tool' else message['role'] %}"
    "<|im_start|>{{ role }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus(
    num_samples: int = 32,
    seed: int = 0,
    profile: str | ModelProfile = DEFAULT_PROFILE,
    **data_kwargs: Any,
) -> list[str]:
    """Text of teacher, oracle and random-zoom episodes on the ``synthetic`` training split.

    Args:
        num_samples: Samples to run.
        seed: Seed of the sample draw.
        profile: Profile the episodes are rendered with (box numbers follow its view sizes).
        **data_kwargs: Other ``load_synthetic`` settings (image size, families).
    """
    from medgym.agents.runner import GroupRunner
    from medgym.agents.scripted import OraclePolicy, RandomZoomPolicy, TeacherPolicy
    from medgym.data import load

    samples = load("synthetic", split="train", num_samples=num_samples, seed=seed, **data_kwargs)
    texts: list[str] = []
    for policy in (TeacherPolicy(), OraclePolicy(), RandomZoomPolicy()):
        for group in GroupRunner(n=1, progress=False, profile=profile).run(samples, policy):
            for t in group.trajectories:
                texts += [t.system_prompt, t.prompt]
                texts += [x for turn in t.turns for x in (turn.action, turn.observation) if x]
    return texts


def build_tokenizer(texts: Iterable[str], vocab_size: int = 768) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers.

    Args:
        texts: Training corpus.
        vocab_size: Target vocabulary size including special tokens.

    Returns:
        A fast tokenizer with the chat template, ``<|im_end|>`` as EOS and ``<|endoftext|>`` as
        padding (left padding, for batched generation).
    """
    tok = Tokenizer(models.BPE())
    # Digits one by one (as Qwen's tokenizer does): box coordinates become digit sequences.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )
    fast.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    fast.add_tokens(list(TEXT_TOKENS))
    return fast
