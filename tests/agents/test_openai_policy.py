from __future__ import annotations

import asyncio
import json
import math

import pytest

pytest.importorskip("openai")
fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, PlainTextResponse  # noqa: E402

from medgym.agents import GroupRunner  # noqa: E402
from medgym.agents.entropy import truncated_entropy  # noqa: E402
from medgym.agents.openai_policy import (  # noqa: E402
    EndpointError,
    OpenAIPolicy,
    OpenAIPolicyConfig,
    restore_stop,
)
from medgym.data import load  # noqa: E402
from medgym.envs.session import EpisodeSession  # noqa: E402
from medgym.errors import ConfigError  # noqa: E402

ZOOM = '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [10, 10, 90, 90]}}\n'


def _logprobs(pieces):
    return {
        "content": [
            {"token": p, "logprob": math.log(0.6), "bytes": None, "top_logprobs": [
                {"token": p, "logprob": math.log(0.6), "bytes": None},
                {"token": "x", "logprob": math.log(0.3), "bytes": None},
            ]}
            for p in pieces
        ]
    }  # fmt: skip


def _completion(message, finish="stop", logprobs=None):
    return {
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish,
                     "logprobs": logprobs}],
    }  # fmt: skip


def _tiny_completion(tiny, body):
    """Serve the tiny model: OpenAI messages in, greedy tokens with top-k logprobs out."""
    import base64
    import io

    import torch
    from PIL import Image

    model, processor = tiny
    messages, images = [], []
    for m in body["messages"]:
        parts = m["content"] if isinstance(m["content"], list) else [
            {"type": "text", "text": m["content"]}
        ]  # fmt: skip
        content = []
        for part in parts:
            if part["type"] == "image_url":
                raw = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                images.append(Image.open(io.BytesIO(raw)).convert("RGB"))
                content.append({"type": "image", "image": images[-1]})
            else:
                content.append(part)
        messages.append({"role": m["role"], "content": content})
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=images or None, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=body["max_tokens"], do_sample=False,
                             output_logits=True, return_dict_in_generate=True)  # fmt: skip
    ids = out.sequences[0, enc["input_ids"].shape[1] :].tolist()
    k = body.get("top_logprobs") or 1
    content = []
    for t, z in zip(ids, out.logits, strict=False):
        logp = torch.log_softmax(z[0].float(), -1)
        top = torch.topk(logp, k)
        content.append({
            "token": processor.tokenizer.decode([t]), "logprob": float(logp[t]), "bytes": None,
            "top_logprobs": [
                {"token": processor.tokenizer.decode([int(i)]), "logprob": float(v),
                 "bytes": None} for v, i in zip(top.values, top.indices, strict=True)
            ],
        })  # fmt: skip
    msg = {"role": "assistant", "content": "".join(c["token"] for c in content)}
    return _completion(msg, finish="length", logprobs={"content": content}), ids


def make_app(log, tiny=None):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        log.append(body)
        model = body["model"]
        if model == "tiny":
            payload, ids = _tiny_completion(tiny, body)
            log[-1]["_ids"] = ids
            return JSONResponse(payload)
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        if model == "slow":
            await asyncio.sleep(2.0)
        if model == "error":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if model == "garbage":
            return PlainTextResponse("<html>not a completion</html>")
        if model == "no-choices":
            return JSONResponse({"id": "c", "object": "chat.completion", "created": 0,
                                 "model": "m", "choices": []})  # fmt: skip
        if model == "tools" and turn == 0:
            call = {
                "id": "t1",
                "type": "function",
                "function": {
                    "name": "zoom_in",
                    "arguments": json.dumps({"bbox_2d": [0, 0, 500, 500]}),
                },
            }
            msg = {"role": "assistant", "content": None, "tool_calls": [call]}
            return JSONResponse(_completion(msg, finish="tool_calls"))
        if turn == 0:  # the stop string "</tool_call>" is not returned, as OpenAI APIs do
            pieces = [ZOOM[i : i + 5] for i in range(0, len(ZOOM), 5)]
            msg = {"role": "assistant", "content": ZOOM}
            return JSONResponse(_completion(msg, logprobs=_logprobs(pieces)))
        msg = {"role": "assistant", "content": "<answer>yes"}
        return JSONResponse(_completion(msg, logprobs=_logprobs(["<answer>", "yes"])))

    return app


@pytest.fixture(scope="module")
def server(request, loopback_server):
    log: list[dict] = []
    tiny = request.getfixturevalue("tiny") if _has_torch() else None
    with loopback_server(make_app(log, tiny)) as url:
        yield f"{url}/v1", log


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def sample():
    return load("synthetic", num_samples=1, seed=2)[0]


def _policy(url, model, **kw):
    return OpenAIPolicy(OpenAIPolicyConfig(model=model, base_url=url, **kw))


def test_episode_through_real_client_restores_stop_and_estimates_entropy(server, sample) -> None:
    url, log = server
    policy = _policy(url, "ok", top_logprobs=2)
    session = EpisodeSession(sample, trajectory_id="a")
    gen = asyncio.run(policy.generate(session))
    assert gen.text == ZOOM + "</tool_call>"
    assert gen.pieces and "".join(gen.pieces) == ZOOM
    expected = truncated_entropy([math.log(0.6), math.log(0.3)])
    assert gen.entropies == pytest.approx([expected] * len(gen.pieces))
    assert gen.logprobs == pytest.approx([math.log(0.6)] * len(gen.pieces))
    session.apply_turn(gen.text, token_logprobs=gen.logprobs, token_entropies=gen.entropies)
    assert session.metrics["tool_ok"] == 1 and len(session.views) == 2
    body = log[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["stop"] == ["</tool_call>", "</answer>"]
    assert "tools" not in body  # qwen2.5-vl: schemas live in the system prompt
    user = body["messages"][1]["content"]
    assert user[0]["type"] == "image_url"
    assert user[0]["image_url"]["url"].startswith("data:image/png;base64,")
    gen2 = asyncio.run(policy.generate(session))
    session.apply_turn(gen2.text)
    assert session.terminated and session.answer == "yes"
    # the second request carried the crop: two images
    images = [p for m in log[-1]["messages"] if isinstance(m["content"], list)
              for p in m["content"] if p["type"] == "image_url"]  # fmt: skip
    assert len(images) == 2


def test_serving_the_tiny_model_truncated_entropy_is_a_lower_bound(server, sample, tiny) -> None:
    from medgym.agents.forced import ForcedPolicy
    from medgym.agents.tiny_vlm import TINY_PROFILE

    url, log = server
    policy = _policy(url, "tiny", top_logprobs=5, max_tokens=8)
    session = EpisodeSession(sample, profile=TINY_PROFILE, trajectory_id="e")
    gen = asyncio.run(policy.generate(session))
    ids = log[-1]["_ids"]
    assert len(gen.entropies) == len(ids) == 8
    exact = ForcedPolicy(*tiny, []).score(session, ids)
    # the served logprobs are the model's; the top-5 estimate never exceeds the exact entropy
    assert gen.logprobs == pytest.approx(exact.logprobs, abs=1e-3)
    assert all(e <= x + 1e-3 for e, x in zip(gen.entropies, exact.entropies, strict=True))
    assert gen.text == "".join(gen.pieces)


def test_structured_tool_calls_become_hermes_text_and_tools_are_sent(server, sample) -> None:
    url, log = server
    policy = _policy(url, "tools", top_logprobs=0)
    session = EpisodeSession(sample, profile="qwen3-vl", trajectory_id="b")
    gen = asyncio.run(policy.generate(session))
    assert gen.text.startswith("<tool_call>") and gen.entropies is None
    assert [t["function"]["name"] for t in log[-1]["tools"]] == [
        s["function"]["name"] for s in session.tool_schemas
    ]
    assert "logprobs" not in log[-1]
    session.apply_turn(gen.text)
    assert session.metrics["tool_ok"] == 1


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        ("slow", {"timeout": 0.3, "max_retries": 0}, "APITimeoutError"),
        ("error", {"max_retries": 1}, "InternalServerError"),
        ("garbage", {}, "chat completion"),
        ("no-choices", {}, "at least one choice"),
    ],
    ids=["timeout", "http-500-after-retry", "non-json-body", "no-choices"],
)
def test_failures_raise_endpoint_error_with_cause(server, sample, model, kwargs, match) -> None:
    url, log = server
    before = len(log)
    policy = _policy(url, model, **kwargs)
    with pytest.raises(EndpointError, match=match):
        asyncio.run(policy.generate(EpisodeSession(sample, trajectory_id="c")))
    assert policy.failures == 1
    if model == "error":
        assert len(log) - before == 2  # one retry


def test_on_error_empty_keeps_the_rollout_going(server, sample) -> None:
    url, _ = server
    policy = _policy(url, "garbage", on_error="empty")
    session = EpisodeSession(sample, trajectory_id="d")
    gen = asyncio.run(policy.generate(session))
    assert gen.text == ""
    session.apply_turn(gen.text)
    assert session.metrics["format_errors"] == 1


def test_group_runner_with_concurrency_limit(server) -> None:
    url, _ = server
    policy = _policy(url, "ok", concurrency=2)
    groups = GroupRunner(n=3, progress=False).run(load("synthetic", num_samples=2, seed=1), policy)
    assert all(t.terminated and t.answer == "yes" for g in groups for t in g.trajectories)
    assert policy.requests == 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<tool_call>\n{}", "<tool_call>\n{}</tool_call>"),
        ("<answer>yes", "<answer>yes</answer>"),
        ("<answer>yes</answer>", "<answer>yes</answer>"),
        ("plain", "plain"),
    ],
    ids=["open-call", "open-answer", "closed", "no-tags"],
)
def test_restore_stop(text, expected) -> None:
    assert restore_stop(text, ("</tool_call>", "</answer>")) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"model": ""}, {"model": "m", "top_logprobs": 21}, {"model": "m", "concurrency": 0},
     {"model": "m", "on_error": "ignore"}, {"model": "m", "timeout": 0}],
    ids=["no-model", "too-many-logprobs", "no-concurrency", "on-error", "zero-timeout"],
)  # fmt: skip
def test_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ConfigError):
        OpenAIPolicyConfig(**kwargs)
