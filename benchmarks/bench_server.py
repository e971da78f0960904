"""Tool server throughput: bare ping vs zoom returning raw pixels vs zoom returning PNG.

Zoom calls ask for the pixels as the response body (``Accept`` names the encoding), the result
JSON riding in a header: one round trip per zoom, no base64.

Starts uvicorn on 127.0.0.1 (free port), drives it with Debian's ``wrk`` (``apt-get install -y
wrk``), 16 connections, and prints req/s, p50 and p99. Then a bounded soak: 16 clients calling
zoom for ``--soak`` seconds, counting failures and sampling the server's resident memory.
Not run in CI. Usage: ``python benchmarks/bench_server.py --duration 10 --soak 60``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from medgym.data import load
from medgym.serving.encoding import MEDIA_TYPES

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "%s"
wrk.body = [==[%s]==]
"""
# A new box per request: every render is a cache miss.
LUA_VARIED = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "%s"
local head, tail = [==[%s]==], [==[%s]==]
request = function()
  local x, y, w = math.random(0, 180), math.random(0, 180), math.random(60, 260)
  local box = string.format("[%%d, %%d, %%d, %%d]", x, y, x + w, y + w)
  return wrk.format(nil, nil, nil, head .. box .. tail)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def wrk(url: str, seconds: int, script: str | None) -> dict[str, float]:
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--soak", type=int, default=60, help="soak seconds (0 skips)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MEDGYM_PORT": str(port), "MEDGYM_WORKERS": str(args.workers),
           "MEDGYM_LOG_LEVEL": "warning"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "medgym", "serve"], env=env)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        wrk(f"{base}/v1/health", 3, None)  # warm-up: every worker up and answering
        sample = load("synthetic", split="test", num_samples=1)[0]
        ref = sample.images[0].model_dump(mode="json")
        d = httpx.post(f"{base}/v1/images/register", json={"ref": ref}, timeout=30).json()
        view = {"bbox_px": [0, 0, d["width"], d["height"]], "out_size": [448, 448]}
        call = {"images": [ref], "views": [view], "name": "zoom_in",
                "arguments": {"bbox_2d": [50, 50, 250, 250]}}  # fmt: skip
        tmp = Path(tempfile.mkdtemp())
        rows = {}
        cases = (
            ("ping", None, False),
            ("zoom raw, same view (cached)", "raw", False),
            ("zoom raw, new view per call", "raw", True),
            ("zoom png, same view (cached)", "png", False),
            ("zoom png, new view per call", "png", True),
        )
        for k, (name, enc, varied) in enumerate(cases):
            script = None
            url = f"{base}/v1/health"
            if enc is not None:
                script = str(tmp / f"case{k}.lua")
                body = json.dumps({**call, "encoding": enc})
                if varied:
                    marker = json.dumps(call["arguments"]["bbox_2d"])
                    head, _, tail = body.partition(marker)
                    Path(script).write_text(LUA_VARIED % (MEDIA_TYPES[enc], head, tail))
                else:
                    Path(script).write_text(LUA % (MEDIA_TYPES[enc], body))
                url = f"{base}/v1/tools/call"
            rows[name] = wrk(url, args.duration, script)
        print(f"{'endpoint':<30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs ping':>8} non2xx")
        for name, r in rows.items():
            ratio = r["rps"] / rows["ping"]["rps"]
            cells = f"{r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {ratio:>8.2f}"
            print(f"{name:<30} {cells} {r['non2xx']}")
        if args.soak:
            soak(base, {**call, "encoding": "raw"}, args.soak, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)


def soak(base: str, body: dict, seconds: int, pid: int) -> None:
    stop = time.monotonic() + seconds
    ok, failed = [0], [0]
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            while time.monotonic() < stop:
                try:
                    good = c.post("/v1/tools/call", json=body).status_code == 200
                except httpx.HTTPError:
                    good = False
                with lock:
                    (ok if good else failed)[0] += 1

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() < stop:
        samples.append(rss_mb(pid))
        time.sleep(max(1.0, seconds / 12))
    for t in threads:
        t.join()
    q = max(1, len(samples) // 4)
    first, last = sum(samples[:q]) / q, sum(samples[-q:]) / q
    print(
        f"soak {seconds}s, 16 clients: {ok[0]} ok, {failed[0]} failed; RSS first quarter "
        f"{first:.0f} MB, last quarter {last:.0f} MB, max {max(samples):.0f} MB"
    )


if __name__ == "__main__":
    main()
