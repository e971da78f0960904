"""The default warm start reads the image: a regression check of the learning-rate diagnosis.

Slow (about 5 minutes the first time, seconds once the default checkpoint is cached under
``MEDGYM_CACHE_DIR``): ``pytest -m slow tests/agents/tiny_vlm/test_warm_start_sees.py``.
Until the view stage at a low learning rate, every warm start gave the same answer to every
image (``docs/learning.md``); this fails if a change to the defaults brings that back.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.slow


def test_default_warm_start_answers_from_the_pixels() -> None:
    import torch

    from medgym.agents.tiny_vlm import load_tiny_vlm, warm_start
    from medgym.agents.tiny_vlm.warm_start import _teacher_sessions, encode_episode

    model, processor = load_tiny_vlm(warm_start())
    tok = processor.tokenizer
    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("yes", "no"))
    sessions = _teacher_sessions(64, 0, "test", "synthetic", no_tool_episodes=False)
    right, p_yes = 0, []
    with torch.no_grad():
        for session in sessions:  # the teacher's episode, the right zoom in view
            enc = encode_episode(processor, session)
            labels = enc.pop("labels")[0].tolist()
            at = max(i for i, t in enumerate(labels) if t in (yes, no))
            p = model(**enc).logits[0, at - 1, [yes, no]].softmax(-1)[0].item()
            p_yes.append(p)
            right += (p > 0.5) == (labels[at] == yes)
    assert right / len(sessions) >= 0.85, f"teacher-forced accuracy {right / len(sessions):.2f}"
    assert max(p_yes) - min(p_yes) > 0.5, "the answer barely moves with the image"
