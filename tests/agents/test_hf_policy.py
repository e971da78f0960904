from __future__ import annotations

import asyncio

import numpy as np
import pytest

from medgym.agents.tiny_vlm import TINY_PROFILE
from medgym.data import load
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError

torch = pytest.importorskip("torch")

from medgym.agents.forced import ForcedPolicy  # noqa: E402
from medgym.agents.hf_policy import HFPolicy, SamplingConfig, encode_prompts  # noqa: E402


@pytest.fixture(scope="module")
def samples():
    return load("synthetic", num_samples=3, seed=11)


def _sessions(samples):
    return [EpisodeSession(s, profile=TINY_PROFILE, trajectory_id=f"t{i}") for i, s in
            enumerate(samples)]  # fmt: skip


def _direct_entropy(model, processor, session, ids, tau):
    """Entropy and logprob from one plain forward pass, in numpy (independent of medgym)."""
    enc = encode_prompts(processor, [session])
    n0 = enc["input_ids"].shape[1]
    forced = torch.tensor([ids])
    enc["input_ids"] = torch.cat([enc["input_ids"], forced], 1)
    enc["attention_mask"] = torch.cat([enc["attention_mask"], torch.ones_like(forced)], 1)
    enc["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], torch.zeros_like(forced)], 1)
    with torch.inference_mode():
        z = model(**enc).logits[0, n0 - 1 : n0 - 1 + len(ids)].double().numpy() / tau
    z -= z.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ent = -(p * np.log(p)).sum(-1)
    lp = np.log(p[np.arange(len(ids)), ids])
    return ent, lp


@pytest.mark.parametrize("tau", [1.0, 0.7], ids=["tau=1", "tau=0.7"])
def test_entropies_equal_direct_computation_from_logits(tiny, samples, tau) -> None:
    model, processor = tiny
    policy = HFPolicy(model, processor, sampling=SamplingConfig(max_new_tokens=12, temperature=tau),
                      seed=0)  # fmt: skip
    sessions = _sessions(samples)
    gens = policy.generate_batch_sync(sessions)  # batched, left-padded
    forced = ForcedPolicy(model, processor, [], temperature=tau)
    for session, gen in zip(sessions, gens, strict=True):
        assert len(gen.token_ids) == len(gen.entropies) == len(gen.logprobs) == len(gen.pieces)
        ent, lp = _direct_entropy(model, processor, session, gen.token_ids, tau)
        np.testing.assert_allclose(gen.entropies, ent, atol=1e-4)
        np.testing.assert_allclose(gen.logprobs, lp, atol=1e-4)
        replay = forced.score(session, gen.token_ids)
        np.testing.assert_allclose(replay.entropies, ent, atol=1e-4)
        assert replay.text == processor.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
    # a random model is close to uniform over the vocabulary
    assert np.mean(gens[0].entropies) > 0.5 * np.log(len(processor.tokenizer))


def test_same_seed_same_generation(tiny, samples) -> None:
    model, processor = tiny
    a = HFPolicy(model, processor, sampling=SamplingConfig(max_new_tokens=8), seed=3)
    b = HFPolicy(model, processor, sampling=SamplingConfig(max_new_tokens=8), seed=3)
    sessions = _sessions(samples[:1])
    assert (
        a.generate_batch_sync(sessions)[0].token_ids == b.generate_batch_sync(sessions)[0].token_ids
    )


def test_turn_stops_at_stop_string(tiny, samples) -> None:
    model, processor = tiny
    policy = HFPolicy(model, processor)
    tok = processor.tokenizer
    ids = tok.encode("<answer>yes</answer> trailing", add_special_tokens=False)
    n = policy._turn_length(ids, ("</answer>",))
    assert tok.decode(ids[:n]) == "<answer>yes</answer>"
    eos = [*tok.encode("<think>", add_special_tokens=False), tok.eos_token_id, 5, 6]
    assert policy._turn_length(eos, ("</answer>",)) == len(eos) - 3


def test_end_to_end_generation_parse_session_and_crop_in_next_prompt(warm_dir, samples) -> None:
    policy = HFPolicy.from_pretrained(warm_dir, sampling=SamplingConfig(max_new_tokens=48), seed=0)
    session = _sessions(samples[:1])[0]
    gen = asyncio.run(policy.generate(session))
    step = session.apply_turn(gen.text, token_ids=gen.token_ids, token_logprobs=gen.logprobs,
                              token_entropies=gen.entropies)  # fmt: skip
    turn = session.turns[0]
    assert turn.action == gen.text and turn.token_entropies == gen.entropies
    assert step.info["metrics"]["turns"] == 1
    # whatever the model wrote, force a valid zoom through the real model next
    if session.done or not session.views[1:]:
        session = _sessions(samples[:1])[0]
        img = session.images[0]
        from medgym.agents.scripted import zoom_call

        text = zoom_call(session, 0, (0, 0, img.width / 3, img.height / 3))
        forced = ForcedPolicy(policy.model, policy.processor, [text])
        g = asyncio.run(forced.generate(session))
        session.apply_turn(g.text, token_entropies=g.entropies)
        assert all(np.isfinite(g.entropies))
    assert len(session.views) == 2 and session.turns[-1].new_views == [1]
    enc = encode_prompts(policy.processor, [session])
    # the next prompt carries the crop: two images, the second at the zoomed view's size
    w, h = session.views[1].out_size
    assert enc["image_grid_thw"].tolist()[1] == [1, h // 14, w // 14]
    nxt = asyncio.run(policy.generate(session))
    result = session.apply_turn(nxt.text)
    assert session.metrics["turns"] == 2 and isinstance(result.reward, float)


def test_batched_runner_with_hf_policy_and_warm_model(warm_dir) -> None:
    from medgym.agents import GroupRunner

    policy = HFPolicy.from_pretrained(warm_dir, sampling=SamplingConfig(max_new_tokens=48), seed=1)
    groups = GroupRunner(n=2, progress=False, profile=TINY_PROFILE).run(
        load("synthetic", num_samples=2, seed=2), policy
    )
    trajs = [t for g in groups for t in g.trajectories]
    assert len(trajs) == 4 and all(t.terminated or t.truncated for t in trajs)
    assert all(t.turns[0].token_entropies for t in trajs)
    assert policy.generated_tokens > 0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_new_tokens": 0}, {"temperature": 0.0}, {"top_p": 1.5}, {"top_k": -1}],
    ids=["no-tokens", "zero-temperature", "top-p>1", "negative-top-k"],
)
def test_sampling_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ConfigError):
        SamplingConfig(**kwargs)


def test_forced_policy_runs_out_of_turns(tiny, samples) -> None:
    model, processor = tiny
    session = _sessions(samples[:1])[0]
    policy = ForcedPolicy(model, processor, ["<answer>yes</answer>"])
    gen = asyncio.run(policy.generate(session))
    session.apply_turn(gen.text)
    assert session.terminated and len(gen.entropies) == len(gen.token_ids)
    with pytest.raises(ConfigError, match="1 turn"):
        asyncio.run(policy.generate(_after_one_turn(samples)))


def _after_one_turn(samples):
    s = _sessions(samples[1:2])[0]
    s.apply_turn("no tags")
    return s
