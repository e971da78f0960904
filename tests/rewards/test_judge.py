from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from medgym.errors import ConfigError
from medgym.rewards import JudgeReward, LLMJudge, make_group_reward
from medgym.rewards.judge import JudgeError, _parse_verdict
from medgym.rewards.testing import make_group

httpx = pytest.importorskip("httpx", reason="httpx is not installed")


def _fake_chat(replies: list[str] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    """YES when the candidate's first word appears in the reference, else NO (or fixed replies)."""
    state = {"calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        if status != 200:
            return httpx.Response(status, json={"error": "down"})
        body = json.loads(request.content)
        user = body["messages"][-1]["content"]
        if replies is not None:
            content = replies[min(state["calls"] - 1, len(replies) - 1)]
        else:
            ref = user.split("Reference answer: ")[1].split("\n")[0].lower()
            cand = user.split("Candidate answer: ")[1].split("\n")[0].lower()
            content = "YES" if cand.split()[0] in ref else "NO"
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    return handler, state


def _judge(handler, **kw) -> LLMJudge:  # type: ignore[no-untyped-def]
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return LLMJudge("http://127.0.0.1:1/v1", "judge", client=client, **kw)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("YES", 1.0), ("no.", 0.0), ("**Yes**", 1.0), ("Maybe", None), ("", None),
     ("No, because", 0.0)],
    ids=["yes", "no-dot", "markdown", "other", "empty", "no-comma"],
)  # fmt: skip
def test_parse_verdict(text: str, verdict: float | None) -> None:
    assert _parse_verdict(text) == verdict


def test_judge_exact_match_short_and_cache() -> None:
    handler, state = _fake_chat()
    judge = _judge(handler)
    assert judge.score("q", "CT", "computed tomography") == 1.0
    assert judge.score("q", "x", "xylophone") == 0.0  # one character
    assert judge.score("q", "", "ref") == 0.0
    assert state["calls"] == 0
    assert judge.score("q", "effusion on the left", "left pleural effusion") == 1.0
    assert judge.score("q", "effusion on the left", "left pleural effusion") == 1.0
    assert judge.score("q", "pneumothorax", "left pleural effusion") == 0.0
    assert state["calls"] == 2


def test_judge_rounds_majority_and_retries() -> None:
    handler, state = _fake_chat(replies=["YES", "NO", "YES"])
    assert _judge(handler, rounds=3).score("q", "aa", "bb") == 1.0
    assert state["calls"] == 3
    handler, state = _fake_chat(replies=["hmm", "NO"])
    assert _judge(handler, retries=1).score("q", "aa", "bb") == 0.0
    assert state["calls"] == 2


def test_judge_failure_modes() -> None:
    handler, state = _fake_chat(status=500)
    assert _judge(handler, retries=1).score("q", "aa", "bb") == 0.0
    assert state["calls"] == 2
    with pytest.raises(JudgeError, match="no YES/NO after 1 tries"):
        _judge(handler, retries=0, on_error="raise").score("q", "aa", "bb")
    with pytest.raises(ConfigError):
        LLMJudge("http://x/v1", "m", rounds=0)


def test_judge_reward_and_registry() -> None:
    handler, _ = _fake_chat()
    judge = _judge(handler)
    g = make_group(["pleural effusion", "effusion", "pneumothorax", None], label="pleural effusion")
    assert JudgeReward(judge).reward(g).rewards == [1.0, 1.0, 0.0, 0.0]
    unlabelled = make_group(["liver mass", "liver mass", "spleen"])
    res = JudgeReward(judge).reward(unlabelled)
    assert res.diagnostics["reference"] == "pseudo" and res.rewards == [1.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match="base_url"):
        make_group_reward("judge")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_judge_against_real_server_on_loopback() -> None:
    fastapi = pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    app = fastapi.FastAPI()
    seen: list[dict] = []

    @app.post("/v1/chat/completions")
    def chat(body: dict) -> dict:  # type: ignore[type-arg]
        seen.append(body)
        return {"choices": [{"message": {"role": "assistant", "content": "YES"}}]}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 10
        while not server.started and time.time() < deadline:
            time.sleep(0.02)
        judge = LLMJudge(f"http://127.0.0.1:{port}/v1", "judge-model", timeout_s=5, api_key="t")
        assert judge.score("Where?", "left base", "left lower lobe") == 1.0
        assert seen[0]["model"] == "judge-model"
        assert seen[0]["messages"][0]["role"] == "system"
        judge.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
