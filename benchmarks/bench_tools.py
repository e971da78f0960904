"""zoom_in + render on a 2048x2048 CT-like image vs the bare OpenCV floor doing the same work.

Run: ``python benchmarks/bench_tools.py [--repeat 7] [--number 50]``

For each box side (64, 512, 2048 original pixels) it times what an episode session does for one
zoom: the ``zoom_in`` tool call (argument validation, box mapping, new view spec) plus
``medgym.core.view.render`` of the new view with a lung window, at a 448 px view. The floor is
the same crop, resize, window arithmetic and grey-to-RGB conversion written directly with numpy
slicing and OpenCV. Medians over ``timeit.repeat`` runs; the ratio is medgym / floor.
"""

from __future__ import annotations

import argparse
import statistics
import timeit

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from medgym.core.images import MedImage, Window
from medgym.core.view import ViewSpec, render
from medgym.tools import TOOLS, ImageInfo, ToolContext

SIDE = 2048
VIEW = 448
LUNG = Window(level=-600, width=1500)


def ct_like(side: int, seed: int = 0) -> np.ndarray:
    """An int16 HU image: air outside, soft tissue body, lungs, bone ring, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    hu = np.full((side, side), -1000.0, np.float32)
    body = (xx / 0.45) ** 2 + (yy / 0.35) ** 2 < 1
    hu[body] = 40.0
    for cx in (-0.18, 0.18):
        hu[((xx - cx) / 0.13) ** 2 + (yy / 0.22) ** 2 < 1] = -850.0
    ring = np.abs(np.hypot(xx / 0.45, yy / 0.35) - 0.95) < 0.03
    hu[ring] = 900.0
    hu += rng.normal(0, 20, hu.shape).astype(np.float32)
    return np.clip(hu, -1024, 3071).astype(np.int16)


def floor_zoom(pixels: np.ndarray, box: tuple[int, int, int, int], win: Window) -> np.ndarray:
    """The same work as zoom + render, hand-written: slice, resize, window, grey to RGB."""
    x1, y1, x2, y2 = box
    crop = pixels[y1:y2, x1:x2]
    interp = cv2.INTER_AREA if (x2 - x1) > VIEW else cv2.INTER_LINEAR
    small = cv2.resize(crop, (VIEW, VIEW), interpolation=interp)
    out = small.astype(np.float32)
    out -= np.float32(win.low)
    out *= np.float32(255.0 / win.width)
    np.clip(out, 0.0, 255.0, out=out)
    return cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_GRAY2RGB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timeit repeats (median taken)")
    parser.add_argument("--number", type=int, default=50, help="calls per repeat")
    args = parser.parse_args()

    hu = ct_like(SIDE)
    image = MedImage.from_array(hu, default_window=Window(level=40, width=400), modality="CT")
    v0 = ViewSpec(bbox_px=(0, 0, SIDE, SIDE), out_size=(VIEW, VIEW), window=LUNG)
    ctx = ToolContext(views=(v0,), images=(ImageInfo.of(image),))
    zoom = TOOLS["zoom_in"]
    plain = image.pixels[0, :, :, 0]

    table = Table(title=f"zoom_in + render, {SIDE}x{SIDE} int16 CT, {VIEW} px view, lung window")
    for col in ("box (orig px)", "medgym median ms", "OpenCV median ms", "ratio"):
        table.add_column(col, justify="right")
    for box_side in (64, 512, 2048):
        x1 = y1 = (SIDE - box_side) // 2
        box = (x1, y1, x1 + box_side, y1 + box_side)
        s = VIEW / SIDE
        args_ = {"bbox_2d": [c * s for c in box], "label": "lesion"}

        def medgym_call(args_: dict = args_) -> np.ndarray:
            return render(image, zoom(ctx, args_).view)

        def floor_call(box: tuple[int, int, int, int] = box) -> np.ndarray:
            return floor_zoom(plain, box, LUNG)

        got, ref = medgym_call(), floor_call()
        if got.shape != ref.shape or np.abs(got.astype(int) - ref.astype(int)).max() > 1:
            raise SystemExit(f"box {box_side}: medgym and the OpenCV floor disagree")
        times = {}
        for name, fn in (("medgym", medgym_call), ("floor", floor_call)):
            runs = timeit.repeat(fn, repeat=args.repeat, number=args.number)
            times[name] = statistics.median(runs) / args.number * 1e3
        ratio = times["medgym"] / times["floor"]
        table.add_row(
            str(box_side), f"{times['medgym']:.3f}", f"{times['floor']:.3f}", f"{ratio:.2f}x"
        )
    Console().print(table)
    volume_table(args.repeat, args.number)


def volume_table(repeat: int, number: int) -> None:
    """``scroll`` + render of a slice of a 512x512x300 int16 volume, a coronal and a sagittal
    reformat (``set_plane``, 0.7 mm pixels and 2 mm slices) and an overview, against the bare
    numpy/OpenCV floor doing the same slicing, resizing and windowing."""
    vol_side, n_slices = 512, 300
    rng = np.random.default_rng(1)
    base = ct_like(vol_side)
    vol = np.stack([base + rng.integers(-20, 20, base.shape, dtype=np.int16)
                    for _ in range(n_slices)])[..., None]  # fmt: skip
    image = MedImage(
        pixels=vol,
        default_window=Window(level=40, width=400),
        modality="CT",
        spacing_mm=(0.7, 0.7),
        slice_spacing_mm=2.0,
    )
    v0 = ViewSpec(bbox_px=(0, 0, vol_side, vol_side), out_size=(VIEW, VIEW), window=LUNG)
    ctx = ToolContext(views=(v0,), images=(ImageInfo.of(image),))
    scroll, overview, set_plane = TOOLS["scroll"], TOOLS["overview"], TOOLS["set_plane"]
    plane = image.pixels[..., 0]
    full = (0, 0, vol_side, vol_side)

    def floor_slice(k: int) -> np.ndarray:
        return floor_zoom(plane[k], full, LUNG)

    def floor_reformat(fixed: int, axis: int, out_size: tuple[int, int]) -> np.ndarray:
        cut = np.ascontiguousarray(plane[:, fixed] if axis == 1 else plane[:, :, fixed])
        small = cv2.resize(cut, out_size, interpolation=cv2.INTER_AREA)
        out = small.astype(np.float32)
        out -= np.float32(LUNG.low)
        out *= np.float32(255.0 / LUNG.width)
        np.clip(out, 0.0, 255.0, out=out)
        return cv2.cvtColor(out.astype(np.uint8)[::-1], cv2.COLOR_GRAY2RGB)

    reformat_size = {
        p: set_plane(ctx, {"plane": p, "slice": 300}).view.out_size  # type: ignore[union-attr]
        for p in ("coronal", "sagittal")
    }

    def floor_overview(slices: tuple[int, ...]) -> np.ndarray:
        cols = 3
        tile = VIEW // cols
        canvas = np.zeros((VIEW, VIEW, 3), np.uint8)
        for i, k in enumerate(slices):
            small = cv2.resize(plane[k], (tile, tile), interpolation=cv2.INTER_AREA)
            out = small.astype(np.float32)
            out -= np.float32(LUNG.low)
            out *= np.float32(255.0 / LUNG.width)
            np.clip(out, 0.0, 255.0, out=out)
            r, c = divmod(i, cols)
            canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = cv2.cvtColor(
                out.astype(np.uint8), cv2.COLOR_GRAY2RGB
            )
        return canvas

    cases = [
        ("scroll to slice 200 + render", lambda: render(image, scroll(ctx, {"slice": 200}).view),
         lambda: floor_slice(200)),
        ("set_plane coronal + render",
         lambda: render(image, set_plane(ctx, {"plane": "coronal", "slice": 300}).view),
         lambda: floor_reformat(300, 1, reformat_size["coronal"])),
        ("set_plane sagittal + render",
         lambda: render(image, set_plane(ctx, {"plane": "sagittal", "slice": 300}).view),
         lambda: floor_reformat(300, 2, reformat_size["sagittal"])),
        ("overview of 9 slices + render", lambda: render(image, overview(ctx, {"count": 9}).view),
         lambda: floor_overview(tuple(round(i * 299 / 8) for i in range(9)))),
    ]  # fmt: skip
    table = Table(title=f"volume {vol_side}x{vol_side}x{n_slices} int16, {VIEW} px view")
    for col in ("case", "medgym median ms", "OpenCV median ms", "ratio"):
        table.add_column(col, justify="right")
    for name, ours, floor in cases:
        times = {}
        for who, fn in (("medgym", ours), ("floor", floor)):
            runs = timeit.repeat(fn, repeat=repeat, number=max(1, number // 5))
            times[who] = statistics.median(runs) / max(1, number // 5) * 1e3
        ratio = times["medgym"] / times["floor"]
        table.add_row(name, f"{times['medgym']:.3f}", f"{times['floor']:.3f}", f"{ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
