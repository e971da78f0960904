"""Env steps per second vs the bare tool call, same run, one core.

Each env step is a policy turn with one 256 px zoom (original pixels) on a 2048x2048 16-bit image,
rendered to a 448 px view: parsing, the session's bookkeeping, the tool, render and the observation
copy. The baseline is the bare tool call plus render on the same view. Goal: >= 1,000 steps/s and
within 2x of the bare tool.

Run: ``python benchmarks/bench_env.py [--steps 3000]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.core.view import render
from medgym.data.cache import load_image
from medgym.envs.env import MedVQAEnv
from medgym.tools import TOOLS
from medgym.tools.base import ImageInfo, ToolContext

cv2.setNumThreads(1)


def make_image() -> MedImage:
    rng = np.random.default_rng(0)
    a = rng.normal(1000, 100, size=(2048, 2048)).clip(0, 4095).astype(np.uint16)
    return MedImage.from_array(a, modality="CT")


def boxes(n: int, view_side: int = 448, box_view: int = 56) -> list[list[int]]:
    # 56 view px of a 448 px view of a 2048 px image = 256 original px.
    rng = np.random.default_rng(1)
    xy = rng.integers(0, view_side - box_view, size=(n, 2))
    return [[int(x), int(y), int(x) + box_view, int(y) + box_view] for x, y in xy]


def bench_env(image_path: str, steps: int, episode_len: int) -> list[float]:
    sample = Sample(id="bench", images=(ImageRef(uri=image_path),), question="q?")
    env = MedVQAEnv(samples=[sample], max_turns=episode_len + 1, max_images=episode_len + 1)
    actions = [
        "<think>look closer</think><tool_call>"
        + json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": b}})
        + "</tool_call>"
        for b in boxes(steps)
    ]
    times = []
    env.reset(seed=0)
    t_in_episode = 0
    for act in actions:
        if t_in_episode == episode_len:
            env.reset()
            t_in_episode = 0
        t = time.perf_counter()
        obs, *_ = env.step(act)
        times.append(time.perf_counter() - t)
        t_in_episode += 1
        if len(obs["images"]) != 1:
            raise RuntimeError(f"expected one new image per step, got {len(obs['images'])}")
    return times


def bench_tool(image: MedImage, steps: int) -> list[float]:
    from medgym.envs.profiles import get_profile

    profile = get_profile("qwen2.5-vl")
    view0 = env_first_view(image, profile)
    ctx = ToolContext(views=(view0,), images=(ImageInfo.of(image),), sizer=profile.view_size)
    tool = TOOLS["zoom_in"]
    times = []
    for b in boxes(steps):
        t = time.perf_counter()
        res = tool(ctx, {"bbox_2d": b})
        render(image, res.view)
        times.append(time.perf_counter() - t)
    return times


def env_first_view(image: MedImage, profile):  # type: ignore[no-untyped-def]
    from medgym.core.view import full_view

    return full_view(image, profile.view_size(image.width, image.height, upscale=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--episode-len", type=int, default=6)
    args = ap.parse_args()
    image = make_image()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ct_2048.png")
        cv2.imwrite(path, image.pixels[0, :, :, 0])  # 16-bit PNG; the env loads it once (cache)
        image = load_image(ImageRef(uri=path))
        bench_tool(image, 100)  # warm-up
        bench_env(path, 100, args.episode_len)
        tool_t = bench_tool(image, args.steps)
        env_t = bench_env(path, args.steps, args.episode_len)
    tool_med, env_med = statistics.median(tool_t), statistics.median(env_t)
    table = Table(title=f"Env step vs bare tool ({args.steps} steps, 256 px zoom, 2048^2 uint16)")
    for c in ("path", "median us", "p90 us", "steps/s", "ratio vs tool"):
        table.add_column(c, justify="right" if c != "path" else "left")
    for name, ts, med in (
        ("bare zoom_in + render", tool_t, tool_med),
        ("env.step", env_t, env_med),
    ):
        p90 = float(np.percentile(ts, 90))
        table.add_row(name, f"{med * 1e6:.0f}", f"{p90 * 1e6:.0f}", f"{len(ts) / sum(ts):.0f}",
                      f"{med / tool_med:.2f}x")  # fmt: skip
    Console().print(table)
    Console().print("goal: env.step >= 1,000 steps/s and <= 2.0x the bare tool")


if __name__ == "__main__":
    main()
