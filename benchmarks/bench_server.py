"""Tool server throughput: a bare FastAPI ping vs zoom returning raw pixels vs zoom returning PNG.

Two uvicorn servers on 127.0.0.1 with the same options (``medgym.serving.run.uvicorn_options``:
workers, httptools and uvloop when installed): a bare FastAPI app with one ``GET /ping`` (the
baseline every ratio is against) and ``medgym serve``. Debian's ``wrk`` (``apt-get install -y
wrk``) drives them one at a time with 16 connections; each case reports req/s, p50 and p99, the
ratio to the bare ping, and the CPU time per request of the server (all its processes) and of
wrk, from ``/proc`` and ``getrusage``: on a small machine wrk and the server share the cores, and
these say where they went.

Zoom calls ask for the pixels as the response body (``Accept`` names the encoding, the result
JSON rides in a header: one round trip, no base64). "Same view" repeats one call (the rendered
view comes from the server's LRU); "new view" draws a new box per request, so every call
renders. Then a bounded soak: 16 Python clients (``ToolServerClient``) calling zoom with new
boxes for ``--soak`` seconds, counting failed calls and sampling the server's resident memory.

Then the abuse phase (``--abuse`` seconds, at most 60; loopback only, every loop bounded in
time): one well-behaved client calls zoom with new boxes, first alone (the quiet run), then while
five attackers run the resource attacks of issue 18 (oversized synthetic findings, 20 MB request
heads, 4,096 px renders, uploads with junk and a flood of distinct uploads, decodes of large
images past the heavy queue). It reports the good client's p50/p99 in both runs, every status
the attackers got, any 5xx other than the deliberate 503, and the server's peak RSS against the
sum of its memory budgets.

Then, with ``--bulk N``, the price of the per-client budget of heavy work to a legitimate client:
N new images (``--bulk-size`` px square) registered by 8 threads of ``ToolServerClient`` (which
waits out 429s) on one address, against this server and against a second one with the budget
off (``MEDGYM_CLIENT_HEAVY_RATE=0``), one after the other: seconds for each and their ratio.

Not run in CI. Usage: ``python benchmarks/bench_server.py --duration 10 --soak 60 --abuse 30``;
``--only-abuse`` skips the wrk cases (no wrk needed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from medgym.data import load
from medgym.errors import MedGymError
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
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bare_app() -> object:
    """The baseline: a FastAPI app with one endpoint and nothing else."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b"pong", media_type="text/plain")

    return app


def serve_bare(port: int, workers: int) -> None:
    """Run :func:`bare_app` under the options ``medgym serve`` uses."""
    import uvicorn

    from medgym.serving.run import uvicorn_options
    from medgym.serving.settings import ServerSettings

    opts = uvicorn_options(ServerSettings(port=port, workers=workers, log_level="warning"))
    uvicorn.run("bench_server:bare_app", factory=True, app_dir=str(Path(__file__).parent), **opts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn workers are children of the supervisor)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants so far."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    """Memory of ``pid`` and its descendants, MB: the sum of their proportional set sizes.

    PSS counts a page shared by n processes as 1/n in each, so the sum over the server, its
    fork server and its worker processes (which share the modules they forked with) counts
    every page once; a sum of RSS would count the shared ones in every process. Where the
    kernel has no ``smaps_rollup``, RSS.
    """
    total = 0
    for p in _tree(pid):
        for name, key in (("smaps_rollup", "Pss"), ("status", "VmRSS")):
            try:
                text = Path(f"/proc/{p}/{name}").read_text()
            except OSError:
                continue
            m = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
            if m:
                total += int(m.group(1))
                break
    return total / 1024


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wrk(url: str, seconds: int, script: str | None, pid: int) -> dict[str, float]:
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    server0, wrk0 = cpu_seconds(pid), _children_cpu()
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    server_s, wrk_s = cpu_seconds(pid) - server0, _children_cpu() - wrk0

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "server_us": 1e6 * server_s / max(done, 1),
        "wrk_us": 1e6 * wrk_s / max(done, 1),
        "failed": (int(errors.group(1)) if errors else 0) + (1 if socket_errors else 0),
    }


def wait_up(url: str) -> None:
    for _ in range(400):
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"server at {url} did not come up")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (median req/s kept)")
    ap.add_argument("--soak", type=int, default=60, help="soak seconds (0 skips)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--abuse", type=int, default=30, help="abuse seconds, <= 60 (0 skips)")
    ap.add_argument("--only-abuse", action="store_true", help="skip the wrk cases and the soak")
    ap.add_argument(
        "--attacker-nice", type=int, default=0,
        help="niceness of the attackers' process (stands in for attackers on other hosts)",
    )  # fmt: skip
    ap.add_argument(
        "--attackers", default=",".join(ATTACKS),
        help=f"attacks to run, comma-separated, of {', '.join(ATTACKS)}; 'none': a control run "
        "(the second phase as quiet as the first: the ratio's own noise)",
    )  # fmt: skip
    ap.add_argument(
        "--bulk",
        type=int,
        default=0,
        help="new images a legitimate client registers, budget on and off (0 skips)",
    )
    ap.add_argument("--bulk-size", type=int, default=1024, help="side of the --bulk images, px")
    ap.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    only = tuple(a for a in args.attackers.split(",") if a and a != "none")
    if set(only) - set(ATTACKS):
        ap.error(f"--attackers: unknown {sorted(set(only) - set(ATTACKS))}; known {ATTACKS}")
    if args.serve_bare:
        serve_bare(args.serve_bare, args.workers)
        return
    if shutil.which("wrk") is None and not args.only_abuse:
        sys.exit("wrk not found: apt-get install -y wrk (or --only-abuse)")
    import uvicorn

    print(f"machine: {machine()}; uvicorn {uvicorn.__version__}, workers {args.workers}")
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MEDGYM_PORT": str(port), "MEDGYM_WORKERS": str(args.workers),
           "MEDGYM_LOG_LEVEL": "warning"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "medgym", "serve"], env=env)
    bare = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(bare_port), "--workers", str(args.workers)]
    )
    try:
        wait_up(f"{base}/v1/health")
        wait_up(f"http://127.0.0.1:{bare_port}/ping")
        sample = load("synthetic", split="test", num_samples=1)[0]
        ref = sample.images[0].model_dump(mode="json")
        d = httpx.post(f"{base}/v1/images/register", json={"ref": ref}, timeout=30).json()
        view = {"bbox_px": [0, 0, d["width"], d["height"]], "out_size": [448, 448]}
        call = {"images": [ref], "views": [view], "name": "zoom_in",
                "arguments": {"bbox_2d": [50, 50, 250, 250]}}  # fmt: skip
        if args.only_abuse:
            seconds = min(60, max(5, args.abuse))
            abuse(base, sample, d, seconds, server.pid, args.attacker_nice, only)
            if args.bulk:
                bulk(base, env, args.bulk, args.bulk_size)
            return
        tmp = Path(tempfile.mkdtemp())
        cases: list[tuple[str, str, int, str | None]] = [
            ("bare FastAPI ping", f"http://127.0.0.1:{bare_port}/ping", bare.pid, None),
            ("medgym /v1/health", f"{base}/v1/health", server.pid, None),
        ]
        for enc in ("raw", "png"):
            for varied in (False, True):
                script = tmp / f"{enc}{int(varied)}.lua"
                body = json.dumps({**call, "encoding": enc})
                if varied:
                    marker = json.dumps(call["arguments"]["bbox_2d"])
                    head, _, tail = body.partition(marker)
                    script.write_text(LUA_VARIED % (MEDIA_TYPES[enc], head, tail))
                else:
                    script.write_text(LUA % (MEDIA_TYPES[enc], body))
                what = "new view per call" if varied else "same view (cached)"
                url = f"{base}/v1/tools/call"
                cases.append((f"zoom {enc}, {what}", url, server.pid, str(script)))
        for url, pid, script in {(c[1], c[2], c[3]) for c in cases}:
            wrk(url, 2, script, pid)  # warm-up: workers up, caches and code paths hot
        rows: dict[str, dict[str, float]] = {}
        for name, url, pid, script in cases:
            runs = sorted((wrk(url, args.duration, script, pid) for _ in range(args.repeat)),
                          key=lambda r: r["rps"])  # fmt: skip
            rows[name] = runs[len(runs) // 2]
        ping = rows["bare FastAPI ping"]["rps"]
        print(f"wrk -t2 -c16 -d{args.duration}s, median of {args.repeat}")
        print(f"{'endpoint':<30} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs ping':>7} "
              f"{'server us/req':>13} {'wrk us/req':>10} failed")  # fmt: skip
        for name, r in rows.items():
            print(f"{name:<30} {r['rps']:>7.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
                  f"{r['rps'] / ping:>7.2f} {r['server_us']:>13.0f} {r['wrk_us']:>10.0f} "
                  f"{r['failed']:.0f}")  # fmt: skip
        if args.soak:
            soak(base, sample, d, args.soak, server.pid)
        if args.abuse:
            abuse(base, sample, d, min(60, args.abuse), server.pid, args.attacker_nice, only)
        if args.bulk:
            bulk(base, env, args.bulk, args.bulk_size)
    finally:
        for p in (server, bare):
            p.terminate()
            p.wait(timeout=10)


def soak(base: str, sample: object, desc: dict, seconds: int, pid: int) -> None:
    from medgym.core.view import ViewSpec
    from medgym.serving.client import ToolServerClient

    images = sample.images  # type: ignore[attr-defined]
    view = ViewSpec(bbox_px=(0, 0, desc["width"], desc["height"]), out_size=(448, 448))
    stop = time.monotonic() + seconds
    ok, failed = [0], [0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with ToolServerClient(base, timeout=10, retries=0) as c:
            while time.monotonic() < stop:
                x, y, w = rng.randint(0, 180), rng.randint(0, 180), rng.randint(60, 260)
                try:
                    _, px = c.call_tool_pixels(images, [view], "zoom_in",
                                               {"bbox_2d": [x, y, x + w, y + w]})  # fmt: skip
                    good = px is not None and px.ndim == 3 and px.shape[2] == 3
                except (httpx.HTTPError, MedGymError):
                    good = False
                with lock:
                    (ok if good else failed)[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() < stop:
        samples.append(rss_mb(pid))
        time.sleep(max(1.0, seconds / 24))
    for t in threads:
        t.join()
    q = max(1, len(samples) // 4)
    first, last = sum(samples[:q]) / q, sum(samples[-q:]) / q
    print(
        f"soak {seconds}s, 16 clients, new box per call: {ok[0]} ok, {failed[0]} failed; server "
        f"RSS first quarter {first:.0f} MB, last quarter {last:.0f} MB, max {max(samples):.0f} MB"
    )


def _good_client(base: str, sample: object, desc: dict, stop: float) -> tuple[list[float], int]:
    """Zoom calls with new boxes until ``stop``: latencies (ms) and failed calls."""
    from medgym.core.view import ViewSpec
    from medgym.serving.client import ToolServerClient

    view = ViewSpec(bbox_px=(0, 0, desc["width"], desc["height"]), out_size=(448, 448))
    rng = random.Random(0)
    lat, failed = [], 0
    with ToolServerClient(base, timeout=10, retries=0, patience=0) as c:
        while time.monotonic() < stop:
            x, y, w = rng.randint(0, 180), rng.randint(0, 180), rng.randint(60, 260)
            t0 = time.perf_counter()
            try:
                c.call_tool_pixels(sample.images, [view], "zoom_in",  # type: ignore[attr-defined]
                                   {"bbox_2d": [x, y, x + w, y + w]})  # fmt: skip
                lat.append((time.perf_counter() - t0) * 1000)
            except (httpx.HTTPError, MedGymError):
                failed += 1
    return lat, failed


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


ATTACKS = ("finding", "head", "render", "uploads", "decodes")


def _attackers(
    base: str, sample: object, stop: float, statuses: dict[str, dict[int, int]],
    only: tuple[str, ...] = ATTACKS,
) -> list:  # fmt: skip
    """The resource attacks of issue 18 named in ``only``, each a bounded loop in its own thread."""
    import io

    import numpy as np
    from PIL import Image

    ref = sample.images[0].model_dump(mode="json")  # type: ignore[attr-defined]
    host, port = base.removeprefix("http://").split(":")

    def count(name: str, code: int) -> None:
        statuses.setdefault(name, {})
        statuses[name][code] = statuses[name].get(code, 0) + 1

    def loop(name: str, step: Any) -> threading.Thread:
        def run() -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                k = 0
                while time.monotonic() < stop:
                    try:
                        count(name, step(c, k))
                    except httpx.HTTPError:
                        count(name, -1)  # connection closed on us: the refusal we want
                    k += 1

        return threading.Thread(target=run, daemon=True)

    def huge_finding(c: httpx.Client, k: int) -> int:
        uri = (f"synthetic://v1?kind=xray&size=256&seed={k}&noise=1&decoys=0"
               "&f=nodule:round:1:100:100:20000:0:100:3")  # fmt: skip
        return c.post("/v1/images/register", json={"ref": {"uri": uri}}).status_code

    # Payloads are built once, as an attacker would: building them per request (a 20 MB bytes
    # object, a PNG encode) was CPU of the attackers' process on the server's cores, which on a
    # real deployment is another host's.
    head_payload = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-J: " + b"a" * 20_000_000
    pngs = []
    for k in range(64):
        arr = np.random.default_rng(k).integers(0, 255, (512, 512), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        pngs.append(buf.getvalue())
    junk = b"\0" * 1_000_000

    def huge_head(c: httpx.Client, k: int) -> int:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            with contextlib.suppress(OSError):  # the server may close before we finish
                s.sendall(head_payload)
            head = s.recv(64)
        return int(head.split()[1]) if head.startswith(b"HTTP/1.1") else -1

    def big_render(c: httpx.Client, k: int) -> int:
        view = {"bbox_px": [k % 50, 0, 400, 400], "out_size": [4096, 4096]}
        return c.post("/v1/render", json={"images": [ref], "view": view, "encoding": "raw"},
                      headers={"Accept": "application/octet-stream"}).status_code  # fmt: skip

    def uploads(c: httpx.Client, k: int) -> int:
        body = pngs[k % len(pngs)] + (junk if k % 2 else b"")
        return c.post("/v1/images", content=body).status_code

    def big_decodes(c: httpx.Client, k: int) -> int:
        uri = f"synthetic://v1?kind=xray&size=2048&seed={10_000 + k}&noise=1&decoys=0"
        return c.post("/v1/images/register", json={"ref": {"uri": uri}}).status_code

    steps = {"huge finding URI": ("finding", huge_finding), "20 MB header": ("head", huge_head),
             "4096 px render": ("render", big_render),
             "uploads (half junk)": ("uploads", uploads),
             "2048 px decodes": ("decodes", big_decodes)}  # fmt: skip
    return [loop(n, f) for n, (key, f) in steps.items() if key in only]


def _attack_process(
    base: str, sample: object, seconds: int, results: Any, nice: int = 0,
    only: tuple[str, ...] = ATTACKS,
) -> None:  # fmt: skip
    """Run every attacker for ``seconds`` (threads of this process); put their statuses.

    ``nice`` > 0 lowers this process's CPU priority: it stands in for attackers on other hosts,
    whose own work (building uploads, sending heads) does not take the server's cores.
    """
    if nice:
        os.nice(nice)
    statuses: dict[str, dict[int, int]] = {}
    threads = _attackers(base, sample, time.monotonic() + seconds, statuses, only)
    if not threads:  # a control run: the second phase alone, as quiet as the first
        time.sleep(seconds)
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 40)
    results.put(statuses)


def abuse(
    base: str,
    sample: object,
    desc: dict,
    seconds: int,
    pid: int,
    attacker_nice: int = 0,
    only: tuple[str, ...] = ATTACKS,
) -> None:
    """The good client alone, then beside the attackers; p99 ratio, statuses, peak RSS."""
    import multiprocessing as mp

    quiet, quiet_failed = _good_client(base, sample, desc, time.monotonic() + seconds / 2)
    # the attackers run in their own process: in this one they would take the good client's GIL
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    attackers = ctx.Process(
        target=_attack_process, args=(base, sample, seconds, results, attacker_nice, only)
    )
    attackers.start()
    stop = time.monotonic() + seconds
    peak = [rss_mb(pid)]

    def sample_rss() -> None:
        while time.monotonic() < stop:
            peak.append(rss_mb(pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    loud, loud_failed = _good_client(base, sample, desc, stop)
    sampler.join(timeout=10)
    statuses: dict[str, dict[int, int]] = results.get(timeout=120)
    attackers.join(timeout=30)
    print(f"abuse {seconds}s, loopback, 1 good client + {len(statuses)} attackers (own process, "
          f"nice {attacker_nice})")  # fmt: skip
    print(f"{'good client':<22} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7} failed")
    for name, lat, bad in (("quiet", quiet, quiet_failed), ("under abuse", loud, loud_failed)):
        print(f"{name:<22} {len(lat):>6} {_pct(lat, 0.5):>7.1f} {_pct(lat, 0.99):>7.1f} {bad}")
    ratio = _pct(loud, 0.99) / _pct(quiet, 0.99)
    print(f"p99 under abuse / quiet: {ratio:.2f}x (goal <= 2x)")
    server_errors = 0
    for name, codes in statuses.items():
        shown = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
        print(f"  {name:<22} {shown}")
        server_errors += sum(n for c, n in codes.items() if c >= 500 and c != 503)
    print(
        f"5xx other than 503: {server_errors}; peak server memory {max(peak):.0f} MB (PSS, all "
        "its processes) "
        "(budgets: image cache 2 GiB, renders 256 MiB, upload store 1 GiB, all by default)"
    )


def _register_all(base: str, n: int, size: int, first_seed: int) -> float:
    """Seconds for 8 threads to register ``n`` new ``size`` px images (429s waited out)."""
    from concurrent.futures import ThreadPoolExecutor

    from medgym.serving.client import ToolServerClient

    def register(c: ToolServerClient, k: int) -> None:
        uri = f"synthetic://v1?kind=xray&size={size}&seed={first_seed + k}&noise=1&decoys=0"
        c.request("POST", "/v1/images/register", json={"ref": {"uri": uri}})

    with ToolServerClient(base, timeout=60, patience=3600) as c, ThreadPoolExecutor(8) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda k: register(c, k), range(n)))
        return time.perf_counter() - t0


def bulk(base: str, env: dict[str, str], n: int, size: int) -> None:
    """A legitimate bulk registration, budget as configured vs budget off (a second server)."""
    port = free_port()
    off = subprocess.Popen(
        [sys.executable, "-m", "medgym", "serve"],
        env={**env, "MEDGYM_PORT": str(port), "MEDGYM_CLIENT_HEAVY_RATE": "0"},
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/v1/health")
        _register_all(f"http://127.0.0.1:{port}", 1, size, 49_999)  # its worker process up
        time.sleep(2)  # the first server's last refusals (held 1 s) are out; its budget refills
        budgeted = _register_all(base, n, size, 50_000)
        unlimited = _register_all(f"http://127.0.0.1:{port}", n, size, 50_000)
    finally:
        off.terminate()
        off.wait(timeout=10)
    rate = env.get("MEDGYM_CLIENT_HEAVY_RATE", "default")
    print(f"bulk: {n} new {size} px images, 8 threads, one address")
    print(f"{'client heavy budget':<28} {'seconds':>8} {'images/s':>9}")
    for name, sec in ((f"MEDGYM_CLIENT_HEAVY_RATE={rate}", budgeted), ("off (=0)", unlimited)):
        print(f"{name:<28} {sec:>8.1f} {n / sec:>9.1f}")
    print(f"slowdown from the budget: {budgeted / unlimited:.2f}x")


if __name__ == "__main__":
    main()
