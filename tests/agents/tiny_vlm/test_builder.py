from __future__ import annotations

import time

import pytest

from medgym.agents.tiny_vlm import TINY_PROFILE, TinyVLMConfig
from medgym.errors import ConfigError

torch = pytest.importorskip("torch")


def test_reloads_through_auto_classes_offline(tiny_dir) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from medgym.agents.tiny_vlm.processor import ImageOnlyQwenVLProcessor, register_processor

    register_processor()
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert isinstance(processor, ImageOnlyQwenVLProcessor)
    assert isinstance(processor.image_processor, Qwen2VLImageProcessorPil)  # no torchvision
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 < n_params < 1_000_000
    size = sum(f.stat().st_size for f in tiny_dir.iterdir())
    assert size < 3_000_000
    for tok in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>"):
        assert tokenizer.convert_tokens_to_ids(tok) != tokenizer.unk_token_id
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")


def test_chat_template_expands_one_image_block_per_image(tiny) -> None:
    from PIL import Image

    _, processor = tiny
    img = Image.new("RGB", (112, 56))
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>yes</answer>"}]},
        {"role": "tool", "content": [{"type": "text", "text": "r"}, {"type": "image", "image": img}]},
    ]  # fmt: skip
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\n")
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert "<|im_start|>tool" not in text and text.endswith("<|im_start|>assistant\n")
    enc = processor(text=[text], images=[img, img], return_tensors="pt")
    # 112x56 px -> 8x4 patches of 14 px -> 2x2 merged -> 8 tokens per image
    assert (enc["input_ids"] == processor.image_token_id).sum().item() == 16
    assert enc["image_grid_thw"].tolist() == [[1, 4, 8], [1, 4, 8]]


def test_forward_is_fast_and_finite(tiny) -> None:
    from PIL import Image

    model, processor = tiny
    side = int(TINY_PROFILE.max_pixels**0.5)
    img = Image.new("RGB", (side, side))
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": img}]}], tokenize=False
    )
    enc = processor(text=[text], images=[img], return_tensors="pt")
    with torch.inference_mode():
        model(**enc)
        start = time.perf_counter()
        logits = model(**enc).logits
        elapsed = time.perf_counter() - start
    assert torch.isfinite(logits).all()
    assert elapsed < 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"hidden_size": 0}, {"hidden_size": 60, "num_heads": 4}],
    ids=["zero-width", "heads-do-not-divide"],
)
def test_config_rejects_bad_sizes(kwargs) -> None:
    with pytest.raises(ConfigError):
        TinyVLMConfig(**kwargs)


def test_load_without_model_says_what_is_missing(tmp_path) -> None:
    from medgym.agents.tiny_vlm import load_tiny_vlm

    with pytest.raises(ConfigError, match=r"config\.json"):
        load_tiny_vlm(tmp_path)


def test_generation_never_samples_a_vision_placeholder(tiny) -> None:
    """A random model would write <|image_pad|>; the next forward pass would then fail."""
    model, processor = tiny
    tok = processor.tokenizer
    banned = {tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|vision_start|>")}
    assert banned <= set(model.generation_config.suppress_tokens)
    with torch.no_grad():
        logits = torch.zeros(1, model.config.text_config.vocab_size)
        logits[0, list(banned)] = 100.0  # the most likely tokens, were they allowed
        ids = torch.tensor([[tok.convert_tokens_to_ids("<|im_start|>")]])
        processors = model._get_logits_processor(
            generation_config=model.generation_config, input_ids_seq_length=1,
            encoder_input_ids=ids, prefix_allowed_tokens_fn=None, logits_processor=None,
        )  # fmt: skip
        out = processors(ids, logits)
    assert out[0].argmax().item() not in banned
