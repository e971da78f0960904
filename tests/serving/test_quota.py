"""Issue 18: per-client budgets of heavy work (429 + Retry-After), and clients that honour them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from medgym.core.images import ImageRef
from medgym.core.sample import Sample
from medgym.errors import ConfigError
from medgym.serving.app import create_app
from medgym.serving.client import AsyncToolServerClient, ToolServerClient
from medgym.serving.quota import ClientBudgets, OverQuota, charge_elsewhere
from medgym.serving.settings import ServerSettings


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_fills_at_its_rate_up_to_its_burst() -> None:
    clock = _Clock()
    budgets = ClientBudgets(rate=0.5, burst=2.0, clock=clock)
    assert budgets.available("a") == 2.0  # a new client starts full
    budgets.charge("a", 3.0)
    with pytest.raises(OverQuota, match="client a used its share") as info:
        budgets.check("a")
    assert info.value.retry_after == 2  # 1 CPU-s of debt at 0.5 per second
    clock.now += 1.0
    assert budgets.available("a") == pytest.approx(-0.5)
    clock.now += 1.01
    budgets.check("a")  # paid back
    clock.now += 1000
    assert budgets.available("a") == 2.0  # never more than the burst
    budgets.check("b")  # clients are apart
    budgets.check(None)  # no client known: never refused


def test_the_table_of_clients_is_bounded() -> None:
    clock = _Clock()
    budgets = ClientBudgets(rate=1.0, burst=1.0, max_clients=3, clock=clock)
    for k in range(10):
        budgets.charge(f"10.0.0.{k}", 5.0)
    assert len(budgets._buckets) == 3
    assert budgets.available("10.0.0.0") == 1.0  # forgotten: starts full again


@pytest.mark.parametrize(
    "kwargs", [{"rate": 0.0, "burst": 1.0}, {"rate": 1.0, "burst": 0.5},
               {"rate": float("nan"), "burst": 1.0}, {"rate": 1.0, "burst": 1.0, "max_clients": 0}],
)  # fmt: skip
def test_bad_budgets_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ClientBudgets(**kwargs)


def _burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU (a decode stands in)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _uri(seed: int) -> dict[str, str]:
    return {"uri": f"synthetic://v1?kind=xray&size=128&seed={seed}&noise=1&decoys=0"}


def test_a_client_past_its_share_gets_429_and_others_go_on(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.01 CPU-s per second: the refill during the calls is negligible, even on a busy machine
    settings = ServerSettings(client_heavy_rate=0.01, client_heavy_burst=0.5, refusal_delay=0.3)
    app = create_app(settings)
    service = app.state.service
    real_load = service.load

    def costly_load(ref: ImageRef) -> Any:
        if "seed=" in ref.uri and "size=128" in ref.uri:
            _burn(0.4)
        return real_load(ref)

    monkeypatch.setattr(service, "load", costly_load)
    cheap_ref = sample.images[0].model_dump(mode="json")

    assert asyncio.run(_post(app, ("10.0.0.9", 1), {"json": {"ref": cheap_ref}})) == 200
    greedy = ("10.0.0.1", 1234)
    codes = [asyncio.run(_post(app, greedy, {"json": {"ref": _uri(k)}})) for k in range(3)]
    assert codes == [200, 200, 429], codes  # 0.8 CPU-s against 0.5 banked: in debt after two
    start = time.perf_counter()
    refused = asyncio.run(_post(app, greedy, {"json": {"ref": _uri(9)}}, full=True))
    assert time.perf_counter() - start >= 0.3  # held before it was sent: no tight loop
    assert refused.json()["error"] == "OverQuota" and "10.0.0.1" in refused.json()["detail"]
    # about 0.3 CPU-s of debt at 0.01 per second, plus the decodes' own CPU (worker process)
    assert 10 <= int(refused.headers["retry-after"]) <= 45
    # work with no heavy job goes on for the same client (an image decoded already)
    assert asyncio.run(_post(app, greedy, {"json": {"ref": cheap_ref}})) == 200
    assert asyncio.run(_post(app, greedy, {"json": {"ref": cheap_ref}})) == 200
    # another client has its own budget
    assert asyncio.run(_post(app, ("10.0.0.2", 99), {"json": {"ref": _uri(5)}})) == 200


async def _post(app: Any, client: tuple[str, int], body: dict, full: bool = False) -> Any:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/v1/images/register", **body)
    return r if full else r.status_code


def test_quota_off_never_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(ServerSettings(client_heavy_rate=0))
    service = app.state.service
    real_load = service.load
    monkeypatch.setattr(service, "load", lambda ref: (_burn(0.2), real_load(ref))[1])
    codes = [asyncio.run(_post(app, ("10.0.0.3", 1), {"json": {"ref": _uri(k)}}))
             for k in range(4)]  # fmt: skip
    assert codes == [200] * 4


def test_the_client_waits_out_retry_after_on_429() -> None:
    calls: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(
                429, json={"detail": "share spent", "error": "OverQuota"},
                headers={"retry-after": "1"},
            )  # fmt: skip
        return httpx.Response(200, json={"status": "ok", "version": "x"})

    client = ToolServerClient("http://127.0.0.1:1", retries=2, backoff=0.0)
    client._http = httpx.Client(base_url=client.base_url, transport=httpx.MockTransport(handle))
    assert client.health()
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.95  # waited the server's Retry-After


def test_a_client_registering_past_its_budget_waits_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the server's budget and medgym's client together: a bulk registration that overdraws the
    # bank is slowed to the budget's rate, and every image still registers
    settings = ServerSettings(client_heavy_rate=0.2, client_heavy_burst=0.3, refusal_delay=0)
    app = create_app(settings)
    service = app.state.service
    real_load = service.load
    # each decode is charged 0.15 CPU-s at once (as a worker process's CPU is): burning it here
    # would take longer on a loaded machine, and the bucket refills by the wall clock
    monkeypatch.setattr(service, "load", lambda ref: (charge_elsewhere(0.15), real_load(ref))[1])
    refused: list[int] = []

    async def bulk() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 1))

        async def count(response: httpx.Response) -> None:
            if response.status_code == 429:
                refused.append(int(response.headers["retry-after"]))

        http = httpx.AsyncClient(
            transport=transport, base_url="http://t", event_hooks={"response": [count]}
        )
        async with AsyncToolServerClient("http://t", retries=0, patience=30) as client:
            client._http = http
            sizes = []
            for k in range(5):
                r = await client.request("POST", "/v1/images/register", json={"ref": _uri(k)})
                sizes.append(r.json()["width"])
            return sizes

    start = time.perf_counter()
    assert asyncio.run(bulk()) == [128] * 5
    # 0.75 CPU-s against 0.3 banked at 0.2 per second: refused, and waited it out
    assert refused and all(s >= 1 for s in refused)
    assert time.perf_counter() - start >= len(refused)
