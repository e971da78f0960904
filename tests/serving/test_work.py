"""Issue 18 D5: heavy decoding cannot starve cheap calls; a flood gets 503 + Retry-After."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from medgym.core.images import ImageRef
from medgym.core.sample import Sample
from medgym.serving.app import create_app
from medgym.serving.settings import ServerSettings
from medgym.serving.work import ServerBusy, WorkQueue


def _uri(seed: int) -> dict[str, str]:
    return {"uri": f"synthetic://v1?kind=xray&size=128&seed={seed}&noise=1&decoys=0"}


def test_a_flood_of_heavy_calls_gets_503_while_cheap_calls_go_on(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(threads=3, heavy_threads=1, max_queued=1)
    app = create_app(settings)
    service = app.state.service
    real_load = service.load

    def slow_load(ref: ImageRef) -> Any:
        if "seed=" in ref.uri and "size=128" in ref.uri:
            time.sleep(0.4)  # a large decode
        return real_load(ref)

    monkeypatch.setattr(service, "load", slow_load)
    cheap_ref = sample.images[0].model_dump(mode="json")

    async def go() -> tuple[list[httpx.Response], float, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            await c.post("/v1/images/register", json={"ref": cheap_ref})  # decoded once
            heavy = [
                asyncio.create_task(c.post("/v1/images/register", json={"ref": _uri(k)}))
                for k in range(4)
            ]
            await asyncio.sleep(0.1)
            start = time.perf_counter()
            cheap = await c.post("/v1/images/register", json={"ref": cheap_ref})
            cheap_s = time.perf_counter() - start
            return list(await asyncio.gather(*heavy)), cheap_s, cheap.status_code

    responses, cheap_s, cheap_status = asyncio.run(go())
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503, 503]  # one running, one waiting, the rest refused
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and busy.json()["error"] == "ServerBusy"
    assert cheap_status == 200 and cheap_s < 0.2  # not behind the decodes


def test_work_queue_refuses_only_past_its_waiting_line() -> None:
    async def go() -> list[object]:
        q = WorkQueue("test", workers=1, max_queued=2)
        tasks = [asyncio.create_task(q.run(time.sleep, 0.2)) for _ in range(4)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(go())
    assert sum(isinstance(r, ServerBusy) for r in results) == 1
    assert sum(r is None for r in results) == 3


def test_large_renders_share_the_heavy_queue(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render over 1,024 px square is heavy work: it waits (or is refused) with the decodes,
    while an ordinary 448 px render is served at once."""
    app = create_app(ServerSettings(threads=3, heavy_threads=1, max_queued=0))
    service = app.state.service
    real_load = service.load

    def slow_load(ref: ImageRef) -> Any:
        if "size=128" in ref.uri:
            time.sleep(0.4)
        return real_load(ref)

    monkeypatch.setattr(service, "load", slow_load)
    ref = sample.images[0].model_dump(mode="json")

    def render(side: int) -> dict[str, Any]:
        view = {"bbox_px": [0, 0, 200, 200], "out_size": [side, side]}
        return {"images": [ref], "view": view, "encoding": "raw"}

    async def go() -> tuple[int, int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            await c.post("/v1/images/register", json={"ref": ref})  # decoded once
            busy = asyncio.create_task(c.post("/v1/images/register", json={"ref": _uri(7)}))
            await asyncio.sleep(0.1)
            big = await c.post("/v1/render", json=render(2048))
            small = await c.post("/v1/render", json=render(448))
            return big.status_code, small.status_code, (await busy).status_code

    assert asyncio.run(go()) == (503, 200, 200)


def test_a_niced_queue_runs_its_work_at_lower_cpu_priority() -> None:
    import os
    import threading

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = niceness()

    async def go() -> tuple[int, int]:
        niced = WorkQueue("heavy", workers=1, max_queued=4, nice=7)
        plain = WorkQueue("light", workers=1, max_queued=4)
        return await niced.run(niceness), await plain.run(niceness)

    heavy, light = asyncio.run(go())
    assert (light == base and heavy == min(19, base + 7)) or heavy == 7


def test_a_429_is_held_up_to_the_delay_and_at_once_past_max_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medgym.serving import work
    from medgym.serving.quota import CLIENT, ClientBudgets, OverQuota

    budgets = ClientBudgets(0.001, 0.01)
    budgets.charge("c", 1.0)  # deep in debt: Retry-After is long, the hold is the delay
    queue = WorkQueue("decoding", 1, 4, budgets=budgets, refusal_delay=0.4)

    async def refused() -> float:
        CLIENT.set("c")
        start = time.perf_counter()
        with pytest.raises(OverQuota):
            await queue.run(lambda: None)
        return time.perf_counter() - start

    assert 0.4 <= asyncio.run(refused()) < 1.5
    assert queue.held == 0
    monkeypatch.setattr(work, "MAX_HELD", 0)
    assert asyncio.run(refused()) < 0.2
