"""What a worker process costs a heavy step: decodes and large renders, in process vs offloaded.

The tool server runs decodes and renders over 1,024 px square in worker processes
(``MEDGYM_HEAVY_PROCESSES``, :mod:`medgym.serving.offload`). The step's work is the same; what
the process adds is the round trip (pickled arguments, pixels through a shared-memory file).
This prints, per case, the wall time per call in the calling thread (baseline: the same step in
process, same run), and the CPU time the calling process spent (what the server's interpreter
pays).

    python benchmarks/bench_offload.py [--repeat 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from medgym.core.images import ImageRef
from medgym.core.view import ViewSpec, render_native
from medgym.data.cache import decode
from medgym.serving.offload import Offload, decode_image


def _uri(size: int, seed: int) -> ImageRef:
    return ImageRef(uri=f"synthetic://v1?kind=xray&size={size}&seed={seed}&noise=1&decoys=0")


def _time(fn: Callable[[int], object], repeat: int) -> tuple[float, float]:
    """Median wall ms per call and mean CPU ms of this process per call."""
    walls = []
    cpu0 = time.process_time()
    for k in range(repeat):
        start = time.perf_counter()
        fn(k)
        walls.append((time.perf_counter() - start) * 1000)
    return statistics.median(walls), (time.process_time() - cpu0) * 1000 / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=8, help="calls per case")
    args = ap.parse_args()
    offload = Offload(1, nice=0)  # the same priority as here: the pipe's cost, not niceness
    offload.start()
    limit = 10**8
    image = decode(_uri(1024, 1))
    shared = offload.decode(_uri(1024, 1), max_pixels=limit)  # as the server has it: in a file
    cases: dict[str, tuple[Callable[[int], object], Callable[[int], object]]] = {}
    for size in (512, 2048):
        cases[f"decode new {size} px image"] = (
            lambda k, s=size: decode_image(_uri(s, 1000 + k), None, limit),
            lambda k, s=size: offload.decode(_uri(s, 2000 + k), max_pixels=limit),
        )
    for out in (1536, 4096):
        view = ViewSpec(bbox_px=(0, 0, 1024, 1024), out_size=(out, out))
        cases[f"render {out} px of a 1024 px image"] = (
            lambda k, v=view: render_native(image, v),
            lambda k, v=view: offload.render(shared, v),
        )
    print(f"{'case':<34} {'in process ms':>13} {'offloaded ms':>12} {'ratio':>6} "
          f"{'caller CPU ms':>13}")  # fmt: skip
    try:
        for name, (here, there) in cases.items():
            base, _ = _time(here, args.repeat)
            wall, cpu = _time(there, args.repeat)
            print(f"{name:<34} {base:>13.1f} {wall:>12.1f} {wall / base:>6.2f} {cpu:>13.1f}")
    finally:
        offload.close()


if __name__ == "__main__":
    main()
