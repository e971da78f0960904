"""Procedural backgrounds of the ``synthetic`` dataset: a chest radiograph, an abdominal CT slice.

The anatomy is a handful of ellipses, polygons and arcs drawn with OpenCV on a 256 px canvas,
blurred and upsampled to the image size (so every anatomical edge is soft at native resolution),
plus low-frequency texture, smooth *decoy* blobs and fine noise whose strength drifts slowly over
the image. All randomness comes from ``numpy`` generators seeded by the image seed.

The geometry (:class:`Anatomy`) is drawn from the seed alone, without pixels, so a dataset can
ask where findings may go (:meth:`Anatomy.allowed`) before any image exists.

Native units: radiographs are ``uint16`` raw values (0-4095, bright = dense), CT slices are
``int16`` Hounsfield units with a soft-tissue default window.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cache
from typing import Literal

import cv2
import numpy as np

from medgym.core.bbox import BBox, intersection
from medgym.core.images import Window
from medgym.errors import ConfigError

__all__ = ["CT_WINDOW", "NOISE_SIGMA", "XRAY_WINDOW", "Anatomy", "ImageKind", "render_background"]

ImageKind = Literal["xray", "ct"]

_CANVAS = 256
_SHIFT = 4
XRAY_WINDOW = Window(level=1400.0, width=2600.0)
CT_WINDOW = Window(level=40.0, width=400.0)
NOISE_SIGMA: dict[str, float] = {"xray": 55.0, "ct": 14.0}
"""Noise standard deviation at ``noise=1``, in native units."""
_DECOY_AMP: dict[str, float] = {"xray": 110.0, "ct": 28.0}


def _image_kind(kind: str) -> ImageKind:
    """``kind`` as an :data:`ImageKind`, or :class:`ConfigError` when it is neither."""
    if kind == "xray":
        return "xray"
    if kind == "ct":
        return "ct"
    raise ConfigError(f"synthetic image kind must be 'xray' or 'ct'; got {kind!r}")


@dataclass(frozen=True)
class Anatomy:
    """Geometry of one background, in fractions of the image side (x right, y down).

    Attributes:
        kind: ``"xray"`` (chest PA radiograph) or ``"ct"`` (axial abdominal slice).
        size: Image side in pixels.
        seed: The image seed the geometry was drawn from.
        body: ``(cx, cy, rx, ry)`` of the body ellipse.
        inner: Scale of the body ellipse inside which findings may go.
        keep_out: Boxes (fractions) where findings may not go (CT spine and bowel gas).
        params: The other drawn numbers, used by the renderer.
        loops: CT bowel loops ``(x, y, radius, aspect, angle, has_gas)``.
    """

    kind: ImageKind
    size: int
    seed: int
    body: tuple[float, float, float, float]
    inner: float
    keep_out: tuple[tuple[float, float, float, float], ...]
    params: dict[str, float]
    loops: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def from_seed(cls, kind: str, size: int, seed: int) -> Anatomy:
        """Draw the geometry of image ``seed`` (cheap: a few dozen random numbers)."""
        image_kind = _image_kind(kind)
        rng = np.random.default_rng([seed, 0])
        u = rng.uniform
        if image_kind == "xray":
            body = (0.5 + u(-0.01, 0.01), 0.56 + u(-0.02, 0.02), u(0.44, 0.47), u(0.52, 0.56))
            p = {
                "lung_y": u(0.43, 0.47),
                "lung_dx": u(0.18, 0.20),
                "lung_rx": u(0.13, 0.15),
                "lung_ry": u(0.27, 0.30),
                "heart_dx": u(0.04, 0.07),
                "heart_y": u(0.62, 0.66),
                "heart_r": u(0.13, 0.16),
                "rib_gap": u(0.052, 0.058),
                "rib_tilt": u(0.05, 0.09),
            }
            return cls(image_kind, size, seed, body, 0.88, (), p)
        body = (0.5 + u(-0.01, 0.01), 0.52 + u(-0.01, 0.01), u(0.44, 0.47), u(0.34, 0.37))
        spine_y = body[1] + 0.62 * body[3]
        p = {
            "spine_y": spine_y,
            "liver_r": u(0.17, 0.21),
            "spleen_r": u(0.06, 0.08),
            "kidney_dx": u(0.13, 0.16),
            "wobble": u(0.0, 2 * math.pi),
        }
        spine = (0.5 - 0.075, spine_y - 0.07, 0.5 + 0.075, min(1.0, spine_y + 0.12))
        loops, keep_out = [], [spine]
        for _ in range(int(rng.integers(5, 9))):  # bowel loops, some holding gas
            bx, by = body[0] + u(-0.12, 0.16), body[1] + u(-0.02, 0.16)
            r, aspect, angle, gas = u(0.025, 0.045), u(0.7, 1.0), u(0, 180), u(0, 1) < 0.6
            loops.append((bx, by, r, aspect, angle, float(gas)))
            if gas:  # gas is black in a soft-tissue window: no finding can show there
                keep_out.append((bx - r * 0.6, by - r * 0.6, bx + r * 0.6, by + r * 0.3))
        return cls(image_kind, size, seed, body, 0.80, tuple(keep_out), p, tuple(loops))

    def allowed(self, box_px: BBox) -> bool:
        """Whether a finding with this box (original pixels) lies on visible soft tissue."""
        n = float(self.size)
        x1, y1, x2, y2 = (v / n for v in box_px)
        cx, cy, rx, ry = self.body
        rx, ry = rx * self.inner, ry * self.inner
        for x, y in ((x1, y1), (x2, y1), (x1, y2), (x2, y2)):
            if ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 > 1.0:
                return False
        return all(intersection((x1, y1, x2, y2), k) is None for k in self.keep_out)

    @property
    def window(self) -> Window:
        """The default display window."""
        return XRAY_WINDOW if self.kind == "xray" else CT_WINDOW


def _pt(x: float, y: float) -> tuple[int, int]:
    return (round(x * _CANVAS * (1 << _SHIFT)), round(y * _CANVAS * (1 << _SHIFT)))


def _ellipse(
    img: np.ndarray,
    c: tuple[float, float],
    r: tuple[float, float],
    value: float,
    angle: float = 0.0,
    thickness: int = -1,
) -> None:
    axes = (round(r[0] * _CANVAS * (1 << _SHIFT)), round(r[1] * _CANVAS * (1 << _SHIFT)))
    cv2.ellipse(img, _pt(*c), axes, angle, 0, 360, value, thickness, cv2.LINE_AA, _SHIFT)


def _smooth_field(rng: np.random.Generator, cells: int, out: int) -> np.ndarray:
    """Random field in about [-1, 1], smooth at the scale ``out / cells``."""
    f: np.ndarray = rng.standard_normal((cells, cells)).astype(np.float32)
    f = cv2.resize(f, (out, out), interpolation=cv2.INTER_CUBIC)
    return np.clip(f / 1.5, -1.0, 1.0)


def _xray_canvas(a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    p = a.params
    img = np.full((_CANVAS, _CANVAS), 160.0, dtype=np.float32)
    cx, cy, rx, ry = a.body
    _ellipse(img, (cx, cy), (rx, ry), 1450.0)
    _ellipse(img, (cx, 0.02), (0.09, 0.12), 1500.0)  # neck
    lungs: np.ndarray = np.zeros_like(img)
    for side, scale in ((-1, 1.0), (1, 0.95)):
        c = (cx + side * p["lung_dx"], p["lung_y"])
        _ellipse(lungs, c, (p["lung_rx"] * scale, p["lung_ry"]), 1.0, angle=-side * 4.0)
    lungs = cv2.GaussianBlur(lungs, (0, 0), 3.0)
    markings = cv2.GaussianBlur(rng.standard_normal(img.shape).astype(np.float32), (0, 0), 1.6)
    img -= lungs * (800.0 - 260.0 * markings)
    med: np.ndarray = np.zeros_like(img)
    _ellipse(med, (cx, 0.36), (0.055, 0.27), 1.0)
    _ellipse(med, (cx + p["heart_dx"], p["heart_y"]), (p["heart_r"] * 1.1, p["heart_r"]), 1.0)
    med = cv2.GaussianBlur(med, (0, 0), 2.0)
    img += med * (1800.0 - img)
    bones = np.zeros_like(img)
    cv2.rectangle(bones, _pt(cx - 0.032, 0.0), _pt(cx + 0.032, 1.0), 1.0, -1, cv2.LINE_AA, _SHIFT)
    for k in range(9):  # posterior ribs: domes from the spine out and down
        y = 0.17 + k * p["rib_gap"]
        b = 0.07 + 0.006 * k
        for side in (-1, 1):
            axes = (round(0.17 * _CANVAS * (1 << _SHIFT)), round(b * _CANVAS * (1 << _SHIFT)))
            centre = _pt(cx + side * 0.13, y + b)
            start, end = (185, 300) if side < 0 else (240, 355)
            cv2.ellipse(
                bones,
                centre,
                axes,
                side * math.degrees(p["rib_tilt"]),
                start,
                end,
                0.8,
                4,
                cv2.LINE_AA,
                _SHIFT,
            )
    for side in (-1, 1):  # clavicles
        cv2.line(
            bones,
            _pt(cx + side * 0.04, 0.15),
            _pt(cx + side * 0.30, 0.10),
            0.9,
            7,
            cv2.LINE_AA,
            _SHIFT,
        )
    img += 380.0 * np.clip(bones, 0.0, 1.0)
    return img


def _ct_canvas(a: Anatomy) -> np.ndarray:
    p = a.params
    img = np.full((_CANVAS, _CANVAS), -1000.0, dtype=np.float32)
    cx, cy, rx, ry = a.body
    t = np.linspace(0, 2 * math.pi, 180, endpoint=False)
    wob = 1.0 + 0.02 * np.cos(3 * t + p["wobble"]) + 0.015 * np.cos(5 * t)
    outline = np.stack([cx + rx * wob * np.cos(t), cy + ry * wob * np.sin(t)], axis=1)
    pts = np.round(outline * _CANVAS * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(img, [pts], -105.0, cv2.LINE_AA, _SHIFT)
    _ellipse(img, (cx, cy), (rx * 0.90, ry * 0.88), 45.0)  # muscle wall
    _ellipse(img, (cx, cy), (rx * 0.86, ry * 0.83), -85.0)  # intra-abdominal fat
    for k in range(14):  # ribs: a broken bone ring
        ang = math.pi * (0.05 + 0.9 * k / 13) if k % 2 else math.pi * (1.1 + 0.8 * k / 13)
        _ellipse(
            img,
            (cx + 0.84 * rx * math.cos(ang), cy + 0.82 * ry * math.sin(ang)),
            (0.012, 0.018),
            650.0,
            angle=math.degrees(ang),
        )
    _ellipse(img, (cx - 0.17, cy - 0.06), (p["liver_r"], p["liver_r"] * 0.8), 62.0, angle=-15)
    _ellipse(img, (cx + 0.27, cy + 0.02), (p["spleen_r"], p["spleen_r"] * 1.6), 52.0, angle=25)
    _ellipse(img, (cx + 0.12, cy - 0.12), (0.10, 0.06), 35.0, angle=-10)  # stomach
    sy = p["spine_y"]
    for side in (-1, 1):
        c = (cx + side * p["kidney_dx"], sy - 0.03)
        _ellipse(img, c, (0.045, 0.07), 150.0, angle=side * 20)
        _ellipse(img, c, (0.022, 0.04), 30.0, angle=side * 20)
        _ellipse(img, (cx + side * 0.06, sy + 0.06), (0.045, 0.05), 55.0)  # paraspinal muscle
    _ellipse(img, (cx + 0.015, sy - 0.085), (0.026, 0.026), 170.0)  # aorta
    _ellipse(img, (cx - 0.045, sy - 0.08), (0.024, 0.02), 110.0)  # IVC
    _ellipse(img, (cx, sy), (0.05, 0.045), 700.0)  # vertebral body: cortex
    _ellipse(img, (cx, sy), (0.042, 0.037), 260.0)  # cancellous bone
    _ellipse(img, (cx, sy + 0.075), (0.018, 0.04), 650.0)  # spinous process
    _ellipse(img, (cx, sy + 0.05), (0.014, 0.012), 20.0)  # spinal canal
    for bx, by, r, aspect, angle, gas in a.loops:
        _ellipse(img, (bx, by), (r, r * aspect), 30.0, angle=angle)
        if gas:
            _ellipse(img, (bx, by - r * 0.2), (r * 0.45, r * 0.3), -950.0)
    return img


@cache
def _gauss_lut() -> np.ndarray:
    """Standard normal quantiles of 256 equal-probability bins: fast Gaussian-like noise."""
    nd = statistics.NormalDist()
    return np.array([nd.inv_cdf((k + 0.5) / 256) for k in range(256)], dtype=np.float32)


def render_background(
    anatomy: Anatomy, *, noise: float, decoys: int, contrast: float = 1.0
) -> np.ndarray:
    """Draw the background of ``anatomy`` at full size, in native units (``float32``).

    Args:
        anatomy: The geometry (from :meth:`Anatomy.from_seed`).
        noise: Multiplier of the native noise level :data:`NOISE_SIGMA`.
        decoys: Number of smooth blobs about the size of a finding (visible at any zoom, but
            without the fine texture of a real finding).
        contrast: Scale of the anatomy (and decoys) about the display window's level: 1 as
            drawn, 0 a plain field at the window's middle grey (noise unchanged).
    """
    n = anatomy.size
    rng = np.random.default_rng([anatomy.seed, 1])
    sharp = _xray_canvas(anatomy, rng) if anatomy.kind == "xray" else _ct_canvas(anatomy)
    canvas: np.ndarray = cv2.GaussianBlur(sharp, (0, 0), 0.9)
    amp = _DECOY_AMP[anatomy.kind]
    cx, cy, rx, ry = anatomy.body
    for _ in range(decoys):
        r, ang = math.sqrt(rng.uniform(0, 1)) * 0.8, rng.uniform(0, 2 * math.pi)
        x, y = cx + r * rx * math.cos(ang), cy + r * ry * math.sin(ang)
        blob = np.zeros_like(canvas)
        _ellipse(blob, (x, y), (0.02, 0.02 * rng.uniform(0.6, 1.0)), 1.0, rng.uniform(0, 180))
        canvas += cv2.GaussianBlur(blob, (0, 0), 2.0) * amp * rng.choice([-1.0, 1.0])
    canvas += 0.35 * amp * _smooth_field(rng, 10, _CANVAS)
    if contrast != 1.0:
        level = np.float32(anatomy.window.level)
        canvas = level + np.float32(contrast) * (canvas - level)
    img = cv2.resize(canvas, (n, n), interpolation=cv2.INTER_CUBIC)
    # Noise with a slowly drifting strength (+-35 %): a local bump of fine-scale energy is no
    # evidence of anything on its own.
    sigma = NOISE_SIGMA[anatomy.kind] * noise
    strength = cv2.resize(
        1.0 + 0.35 * _smooth_field(rng, 5, 64), (n, n), interpolation=cv2.INTER_LINEAR
    )
    grain = _gauss_lut()[np.frombuffer(rng.bytes(n * n), dtype=np.uint8).reshape(n, n)]
    grain *= strength
    grain *= np.float32(sigma)
    img += grain
    return img
