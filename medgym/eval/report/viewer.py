"""The trajectory viewer: HTML for episodes, with zoom boxes drawn on their parent views."""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
from typing import Any

import numpy as np
from PIL import Image

from medgym.core.images import ImageRef
from medgym.core.trajectory import Group, Trajectory
from medgym.core.view import ViewSpec, render
from medgym.data.cache import load_image
from medgym.errors import MedGymError
from medgym.eval.ablations import ensure_blank_scheme

__all__ = ["episode_html", "high_entropy_mask", "view_png"]

logger = logging.getLogger(__name__)

THUMB_SIDE = 192
"""Longest side (pixels) of view thumbnails in the report."""


def view_png(group: Group, view: ViewSpec, max_side: int = THUMB_SIDE) -> str | None:
    """A view rendered as a base64 PNG (``None`` when the image cannot be read).

    Results are cached by image and view, so rollouts of one sample share their first view.
    """
    ref = (
        group.sample.images[view.image_index]
        if view.image_index < len(group.sample.images)
        else None
    )
    if ref is None:
        return None
    return _png_cached(ref.model_dump_json(), view.model_dump_json(), max_side)


@functools.lru_cache(maxsize=512)
def _png_cached(ref_json: str, view_json: str, max_side: int) -> str | None:
    ensure_blank_scheme()
    try:
        image = load_image(ImageRef.model_validate_json(ref_json))
        pixels = render(image, ViewSpec.model_validate_json(view_json))
    except (MedGymError, OSError) as e:
        logger.warning("view not rendered for the report: %s", e)
        return None
    arr = np.asarray(pixels).astype(np.uint8)
    if arr.ndim == 3 and (arr.shape[2] == 1 or (arr == arr[:, :, :1]).all()):
        arr = arr[:, :, 0]  # grayscale PNGs are a third the size
    pil = Image.fromarray(arr)
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def high_entropy_mask(entropies: list[float], quantile: float = 0.9) -> list[bool]:
    """Which tokens are "high entropy": at or above the turn's ``quantile`` and above 0."""
    if not entropies:
        return []
    cut = float(np.quantile(np.asarray(entropies), quantile))
    return [v >= cut and v > 0 for v in entropies]


def _turn_text(traj: Trajectory, i: int) -> str:
    turn = traj.turns[i]
    pieces = None
    tokens = traj.meta.get("turn_tokens")
    if isinstance(tokens, list) and i < len(tokens):
        pieces = tokens[i]
    ents = turn.token_entropies
    if not pieces or not ents or len(pieces) != len(ents):
        return html.escape(turn.action)
    mask = high_entropy_mask(ents)
    return "".join(
        f'<span class="hi" title="H={h:.2f}">{html.escape(p)}</span>' if m else html.escape(p)
        for p, h, m in zip(pieces, ents, mask, strict=True)
    )


def _parent(traj: Trajectory, call_args: dict[str, Any]) -> int:
    idx = call_args.get("image_index", 0)
    return idx if isinstance(idx, int) and 0 <= idx < len(traj.views) else 0


def _boxes_by_view(traj: Trajectory) -> dict[int, list[tuple[float, float, float, float, str]]]:
    """Normalised boxes (x, y, w, h in %) of every executed region, keyed by parent view."""
    out: dict[int, list[tuple[float, float, float, float, str]]] = {}
    for call in traj.tool_calls:
        if not call.ok or call.bbox_px is None:
            continue
        parent = traj.views[_parent(traj, call.arguments)]
        x1, y1, x2, y2 = parent.original_to_view(call.bbox_px)
        w, h = parent.out_size
        box = (100 * x1 / w, 100 * y1 / h, 100 * (x2 - x1) / w, 100 * (y2 - y1) / h, call.name)
        out.setdefault(_parent(traj, call.arguments), []).append(box)
    return out


def _evidence_boxes(group: Group, view: ViewSpec) -> list[tuple[float, float, float, float]]:
    out = []
    w, h = view.out_size
    for ev in group.sample.evidence:
        if ev.image_index == view.image_index:
            x1, y1, x2, y2 = view.original_to_view(ev.bbox_px)
            out.append((100 * x1 / w, 100 * y1 / h, 100 * (x2 - x1) / w, 100 * (y2 - y1) / h))
    return out


def _figure(group: Group, traj: Trajectory, index: int, boxes: list[Any]) -> str:
    view = traj.views[index]
    png = view_png(group, view)
    if png is None:
        return (
            f'<figure class="view"><figcaption>view {index}: image unavailable</figcaption>'
            "</figure>"
        )
    divs = "".join(
        f'<div class="zoom-box" style="left:{x:.2f}%;top:{y:.2f}%;width:{w:.2f}%;height:{h:.2f}%"'
        f' title="{html.escape(name)} -> new view"></div>'
        for x, y, w, h, name in boxes
    )
    if index == 0:
        divs += "".join(
            f'<div class="evidence-box" style="left:{x:.2f}%;top:{y:.2f}%;width:{w:.2f}%;'
            f'height:{h:.2f}%" title="evidence"></div>'
            for x, y, w, h in _evidence_boxes(group, view)
        )
    return (
        f'<figure class="view"><div class="frame"><img alt="view {index}" '
        f'src="data:image/png;base64,{png}">{divs}</div>'
        f"<figcaption>view {index}{_slice_caption(view)}</figcaption></figure>"
    )


def _slice_caption(view: ViewSpec) -> str:
    """Where in a volume a view looks (nothing for a 2D view): plane and slice, or an overview's."""
    if view.montage is not None:
        what = "slices" if view.reformat is None else f"{view.reformat} planes"
        return f" · overview of {what} " + ", ".join(map(str, view.montage))
    if view.reformat is not None:
        where = "middle" if view.slice_index is None else str(view.slice_index)
        return f" · {view.reformat} plane {where}"
    if view.slice_index is not None:
        return f" · slice {view.slice_index}"
    return ""


def episode_html(group: Group, traj: Trajectory, record: dict[str, Any], condition: str) -> str:
    """One episode: question, turns (high-entropy tokens highlighted), views, answer, rewards."""
    s = group.sample
    boxes = _boxes_by_view(traj)
    figures = "".join(_figure(group, traj, i, boxes.get(i, [])) for i in range(len(traj.views)))
    turns = "".join(
        f'<div class="turn"><div class="action">{_turn_text(traj, i)}</div>'
        + (f'<div class="obs">{html.escape(t.observation)}</div>' if t.observation else "")
        + "</div>"
        for i, t in enumerate(traj.turns)
    )
    parts = ", ".join(f"{k}={v:.2f}" for k, v in sorted(traj.reward_parts.items()))
    correct = int(record["correct"])
    group_key = html.escape(str(record.get("modality", "unknown")))
    verdict = "correct" if correct else "incorrect"
    return (
        f'<section class="episode {verdict}" data-correct="{correct}" '
        f'data-group="{group_key}" data-condition="{html.escape(condition)}">'
        f"<h3>{html.escape(traj.id)} <small>[{html.escape(condition)}; {verdict}; "
        f"{group_key}]</small></h3>"
        f'<p class="question">{html.escape(s.question)}'
        + (f" <em>options: {html.escape(' | '.join(s.options))}</em>" if s.options else "")
        + f'</p><div class="views">{figures}</div><div class="turns">{turns}</div>'
        f"<p><b>answer:</b> {html.escape(str(traj.answer))} &nbsp; <b>reference:</b> "
        f"{html.escape(str(s.answer))} &nbsp; <b>score:</b> {record['score']:.2f}</p>"
        f'<p class="parts"><b>reward parts:</b> {html.escape(parts) or "none"}</p></section>'
    )
