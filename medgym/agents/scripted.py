"""Scripted policies: baselines and test drivers that speak the same text format as models.

- :class:`OraclePolicy` zooms on the evidence box and answers with the label. It reads labels,
  so it is a test driver and an upper bound, never a row of an ablation table.
- :class:`TeacherPolicy` zooms on the region the question names (read from its text), then
  answers with the label: the demonstrations a model is warm-started on. It reads labels too.
- :class:`PixelReaderPolicy` reads pixels only: it zooms where a simple detector sees a finding,
  then answers from the crop.
- :class:`RandomZoomPolicy` zooms somewhere at random, then guesses.
- :class:`DirectPolicy` answers at once from the first view (the no-tool baseline).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from medgym.agents.policy import Generation
from medgym.core.bbox import BBox, clamp, iou
from medgym.core.view import montage_grid, montage_label_box
from medgym.data.synthetic_layout import zones
from medgym.errors import ConfigError, did_you_mean
from medgym.tools.overview import MAX_TILES

if TYPE_CHECKING:
    from medgym.envs.session import EpisodeSession

__all__ = [
    "SCRIPTED_POLICIES",
    "DirectPolicy",
    "OraclePolicy",
    "PixelReaderPolicy",
    "RandomZoomPolicy",
    "ScrollerPolicy",
    "TeacherPolicy",
    "make_scripted_policy",
    "question_region",
    "tool_call_text",
    "zoom_call",
]


def tool_call_text(name: str, arguments: dict[str, Any], thought: str = "") -> str:
    """A Hermes-style tool call turn."""
    think = f"<think>{thought}</think>\n" if thought else ""
    return f"{think}<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def answer_text(answer: str, thought: str = "") -> str:
    """An answer turn."""
    think = f"<think>{thought}</think>\n" if thought else ""
    return f"{think}<answer>{answer}</answer>"


def zoom_call(session: EpisodeSession, view_index: int, box_px: BBox, thought: str = "") -> str:
    """A ``zoom_in`` turn on ``box_px`` (original pixels), written in the profile's convention."""
    view = session.views[view_index]
    vb = view.original_to_view(box_px)
    vb = clamp(vb, *view.out_size) or (0.0, 0.0, float(view.out_size[0]), float(view.out_size[1]))
    args: dict[str, Any] = {"bbox_2d": session.profile.from_view_px(vb, view.out_size)}
    if view_index:
        args["image_index"] = view_index
    return tool_call_text("zoom_in", args, thought)


def _margin(box: BBox, frac: float, width: float, height: float) -> BBox:
    w, h = box[2] - box[0], box[3] - box[1]
    grown = (box[0] - frac * w, box[1] - frac * h, box[2] + frac * w, box[3] + frac * h)
    return clamp(grown, width, height) or box


def _fallback_answer(session: EpisodeSession, rng: np.random.Generator) -> str:
    s = session.sample
    if s.options:
        return str(s.options[int(rng.integers(len(s.options)))])
    return "yes" if rng.random() < 0.5 else "no"


def _rng(session: EpisodeSession) -> np.random.Generator:
    # Seeded by the trajectory id: the same rollout id always makes the same choices.
    return np.random.default_rng(zlib.crc32(session.trajectory_id.encode()))


def _can_zoom(session: EpisodeSession) -> bool:
    return "zoom_in" in session.tools and session.images_left > 0 and session.turns_left > 1


class OraclePolicy:
    """Zooms on the union of the evidence boxes, then answers with the reference label."""

    name = "oracle"

    def __init__(self, margin: float = 0.5) -> None:
        self.margin = margin

    async def generate(self, session: EpisodeSession) -> Generation:
        """Zoom on the evidence on the first turn, answer on the next."""
        s = session.sample
        if session.metrics["turns"] == 0 and s.evidence and _can_zoom(session):
            idx = s.evidence[0].image_index
            boxes = [e.bbox_px for e in s.evidence if e.image_index == idx]
            union = (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
            img = session.images[idx]
            box = _margin(union, self.margin, img.width, img.height)
            return Generation(zoom_call(session, idx, box, "The finding is small; look closer."))
        answer = s.answer if s.answer is not None else _fallback_answer(session, _rng(session))
        return Generation(answer_text(answer))


_REGION = re.compile(r"x (\d{1,3})\s*[–-]\s*(\d{1,3})%,\s*y (\d{1,3})\s*[–-]\s*(\d{1,3})%")


def question_region(question: str) -> tuple[float, float, float, float] | None:
    """The region a question names in percent (``x 41–55%, y 18–32%``), as fractions 0-1.

    Returns:
        ``(x1, y1, x2, y2)`` as fractions of the image, or ``None`` when the question names no
        region (or names an empty one).

    Example:
        >>> question_region("Is there a nodule inside the region x 41–55%, y 18–32% of it?")
        (0.41, 0.18, 0.55, 0.32)
    """
    m = _REGION.search(question)
    if m is None:
        return None
    x1, x2, y1, y2 = (int(v) / 100 for v in m.groups())
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        return None
    return (x1, y1, x2, y2)


class TeacherPolicy:
    """Zooms on the region the question names, then answers with the reference label.

    Unlike :class:`OraclePolicy` its zoom reads nothing hidden: the box is the percent region
    written in the question (a zone or a region of interest), which a model can copy from the
    text, so its episodes are demonstrations a model can imitate (the warm start's data). On a
    volume it looks with an ``overview`` of 16 slices of the whole stack (where the env has the
    tool): the same call for every question. Other questions that name no region are answered
    at once. It reads labels: never ablated.

    Args:
        misdirect: Share of ``zone_presence`` episodes (drawn per rollout, seeded by its id) in
            which it zooms on another of the nine zones and answers what that zone shows (a
            nodule whose centre is in it: ``yes``). Demonstrations of an imperfect expert:
            the answer always follows the view, the choice of view is sometimes wrong, so a
            model trained on them leaves room to learn where to look.
    """

    name = "teacher"
    tiles = MAX_TILES

    def __init__(self, misdirect: float = 0.0) -> None:
        if not 0.0 <= misdirect < 1.0:
            raise ConfigError(f"misdirect must be in [0, 1); got {misdirect!r}")
        self.misdirect = misdirect

    async def generate(self, session: EpisodeSession) -> Generation:
        """Zoom on the named region (or overview a volume) first, answer with the label next."""
        s = session.sample
        region = question_region(s.question)
        first = session.metrics["turns"] == 0
        if first and region is not None and _can_zoom(session):
            img = session.images[0]
            w, h = img.width, img.height
            zone = self._misdirected_zone(session, region)
            region = zone if zone is not None else region
            box = (region[0] * w, region[1] * h, region[2] * w, region[3] * h)
            return Generation(zoom_call(session, 0, box, "Look at the region asked about."))
        if first and session.images[0].num_slices > 1 and "overview" in session.tools:
            call = tool_call_text("overview", {"count": self.tiles}, "Page through the stack.")
            return Generation(call)
        answer = s.answer if s.answer is not None else _fallback_answer(session, _rng(session))
        shown = _zone_answer(session)
        return Generation(answer_text(shown if shown is not None else answer))

    def _misdirected_zone(
        self, session: EpisodeSession, region: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float] | None:
        """Another zone to look at, for a ``misdirect`` share of zone questions (else None)."""
        if not self.misdirect or session.sample.question_type != "zone_presence":
            return None
        rng = _rng(session)
        if rng.random() >= self.misdirect:
            return None
        img = session.images[0]
        # the zones as the questions write them (percent fractions), the named one left out
        written = [question_region(z.text) for z in zones(img.width, img.height)]
        others = [z for z in written if z is not None and z != region]
        return others[int(rng.integers(len(others)))]


def _zone_answer(session: EpisodeSession) -> str | None:
    """What a misdirected zoom shows: ``yes``/``no`` for a nodule in the zoomed zone.

    ``None`` unless the episode is a ``zone_presence`` question whose zoom missed the named
    zone (then the label answers, as usual). A nodule counts when its centre is in the zoom.
    """
    s = session.sample
    query, findings = s.meta.get("query") or {}, s.meta.get("findings")
    looked = [c.bbox_px for t in session.turns for c in t.tool_calls if c.ok and c.bbox_px]
    if s.question_type != "zone_presence" or not looked or findings is None:
        return None
    box, named = looked[-1], query.get("region_px")
    if named is not None and iou(box, tuple(named)) > 0.5:
        return None  # the named zone (up to rounding): the label is the answer
    x1, y1, x2, y2 = box
    for f in findings:
        if f.get("kind") != "nodule" or "bbox_px" not in f:
            continue
        fx1, fy1, fx2, fy2 = f["bbox_px"]
        if x1 <= (fx1 + fx2) / 2 < x2 and y1 <= (fy1 + fy2) / 2 < y2:
            return "yes"
    return "no"


class RandomZoomPolicy:
    """Zooms into a random box (10-50% of the view side), then guesses."""

    name = "random-zoom"

    async def generate(self, session: EpisodeSession) -> Generation:
        """Random zoom first, random answer next."""
        rng = _rng(session)
        if session.metrics["turns"] == 0 and _can_zoom(session):
            img = session.images[0]
            side = rng.uniform(0.1, 0.5) * min(img.width, img.height)
            x = rng.uniform(0, img.width - side)
            y = rng.uniform(0, img.height - side)
            return Generation(zoom_call(session, 0, (x, y, x + side, y + side)))
        rng.random()  # a different draw from the zoom turn's
        return Generation(answer_text(_fallback_answer(session, rng)))


class PixelReaderPolicy:
    """Reads pixels only: zooms where the detector points, then answers from the latest view.

    It reads the question's *where* and *what* (``sample.meta["query"]`` of the bundled zoom
    questions), never the answer or the evidence. Questions it cannot read (tag questions of
    ``realworld``) get a seeded guess.

    Args:
        zoom: Whether to zoom before answering (``False``: answer from the first view).
        max_zooms: Most successive zooms (each on the latest view) before answering.
    """

    def __init__(self, zoom: bool = True, max_zooms: int = 2) -> None:
        from medgym.data.detector import PixelReader

        self.reader = PixelReader()
        self.zoom = zoom
        self.max_zooms = max_zooms
        self.name = "pixel-reader" if zoom else "direct"

    async def generate(self, session: EpisodeSession) -> Generation:
        """Zoom on the detector's proposal (up to ``max_zooms`` times), then answer."""
        sample = session.sample
        if "query" not in sample.meta:
            return Generation(answer_text(_fallback_answer(session, _rng(session))))
        last = len(session.views) - 1
        view = session.views[last]
        zooms = int(session.metrics["images_shown"])
        if self.zoom and zooms < self.max_zooms and _can_zoom(session):
            box_view = self.reader.propose(sample, session.pixels(last), view)
            w, h = view.out_size
            if (
                box_view is not None
                and (box_view[2] - box_view[0]) * (box_view[3] - box_view[1]) < 0.5 * w * h
            ):
                box = view.view_to_original(box_view)
                return Generation(zoom_call(session, last, box, "Something small; look closer."))
        answer = self.reader.answer(sample, session.pixels(last), view)
        return Generation(answer_text(answer))


def _overviewed(session: EpisodeSession) -> set[int]:
    """First slices of the overviews shown so far (a range is known by its first slice)."""
    return {v.montage[0] for v in session.views if v.montage}


class ScrollerPolicy:
    """Reads a volume the way a radiologist pages through it: overview, scroll, look, answer.

    It searches the stack with ``overview`` montages of 16 slices, one range per turn, the
    ranges cut so that no two neighbouring tiles are more than ``stride`` slices apart (one
    montage for up to 76 slices, three for 200), and reads each tile's pixels for a bright
    round finding (a voxel ``threshold`` above the body's intensity). From the tile that shows
    the most of it, it answers the ``synthetic3d`` questions: presence (``yes`` once found,
    ``no`` after the whole stack), location (which half holds that slice), side (after a
    ``scroll`` to that slice, where the bright area's centre lies) and size, read as a
    radiologist measures a nodule: a ``scroll`` to the slice, ``set_plane`` to the coronal
    plane through its centre row (where its widest extent shows whatever slice it was found
    on), ``measure`` across its widest row, and the answer from the millimetres the tool
    reports. Without ``overview`` it scrolls one slice every ``stride`` instead.
    It never reads the answer or the evidence. On a 2D image, or with one turn left, it answers
    with a seeded guess.

    Args:
        stride: Most slices between two looks (nodules of ``synthetic3d`` span 5 to 7 slices).
        threshold: Pixel value above which a slice shows a finding.
    """

    name = "scroller"
    tiles = MAX_TILES

    def __init__(self, stride: int = 5, threshold: int = 140) -> None:
        self.stride = stride
        self.threshold = threshold

    def ranges(self, slices: int) -> list[tuple[int, int]]:
        """The ``(first, last)`` slice ranges of the search's montages, in order."""
        if slices < 2:
            return []
        parts = max(1, math.ceil((slices - 1) / ((self.tiles - 1) * self.stride)))
        cuts = [round(i * slices / parts) for i in range(parts + 1)]
        return [(cuts[i], cuts[i + 1] - 1) for i in range(parts)]

    def _found(self, session: EpisodeSession) -> tuple[int, float] | None:
        """``(slice, centre column in original pixels)`` of the first view showing a finding."""
        for k, view in enumerate(session.views):
            pixels = session.pixels(k)
            if (
                view.montage is None
                and view.reformat is None
                and int(pixels.max()) > self.threshold
            ):
                n = session.images[view.image_index].num_slices
                ys, xs = np.nonzero(pixels[:, :, 0] > self.threshold)
                x, _ = view.point_to_original(float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)
                return (n // 2 if view.slice_index is None else view.slice_index), x
        return None

    def _tile_areas(self, session: EpisodeSession, k: int) -> dict[int, int]:
        """Bright area of each tile of montage view ``k``, by slice (the numbers masked)."""
        view, pixels = session.views[k], session.pixels(k)
        slices = view.montage or ()
        cols, rows = montage_grid(len(slices))
        tile_w, tile_h = view.out_size[0] // cols, view.out_size[1] // rows
        areas = {}
        for i, index in enumerate(slices):
            r, c = divmod(i, cols)
            tile = pixels[r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w, 0]
            mask = tile > self.threshold
            x0, y0, x1, y1 = montage_label_box(tile_w, tile_h, str(index))
            mask[y0:y1, x0:x1] = False  # the burnt-in number
            areas[index] = int(mask.sum())
        return areas

    def _search(self, session: EpisodeSession) -> tuple[int | None, Generation | None]:
        """``(slice the montages show a finding on, next overview call)``; both None when done.

        Returns the slice whose tile shows the most bright area once any montage shows one,
        else the overview of the next range not yet looked at, else ``(None, None)``.
        """
        areas: dict[int, int] = {}
        for k, view in enumerate(session.views):
            if view.montage is not None:
                areas.update(self._tile_areas(session, k))
        if areas and max(areas.values()) > 0:
            return max(areas, key=lambda index: areas[index]), None
        seen = _overviewed(session)
        todo = [r for r in self.ranges(session.images[0].num_slices) if r[0] not in seen]
        if not todo or session.turns_left < 2:
            return None, None
        first, last = todo[0]
        args = {"count": self.tiles, "first": first, "last": last}
        return None, Generation(tool_call_text("overview", args, "Page through the stack."))

    def _measure_size(self, session: EpisodeSession, best: int) -> Generation | None:
        """The next step of the size reading (scroll, coronal plane, measure, answer)."""
        views = session.views
        reports = [
            c.text for t in session.turns for c in t.tool_calls if c.name == "measure" and c.ok
        ]
        if reports:  # answered even on the last turn
            mm = float(re.findall(r"([0-9.]+) mm$", reports[-1])[0])
            options = [str(o) for o in session.sample.options]
            smaller = next(o for o in options if o.startswith("smaller"))
            larger = next(o for o in options if o.startswith("larger"))
            limit = float(re.findall(r"([0-9.]+) mm", smaller)[0])
            return Generation(answer_text(smaller if mm < limit else larger, f"{mm:g} mm wide."))
        if not {"set_plane", "measure"} <= set(session.tools) or session.turns_left < 2:
            return None
        coronal = [k for k, v in enumerate(views) if v.reformat == "coronal"]
        if coronal:
            k = coronal[-1]
            bright = session.pixels(k)[:, :, 0] > self.threshold
            if not bright.any():
                return None
            widths = bright.sum(axis=1)
            row = int(widths.argmax())
            xs = np.nonzero(bright[row])[0]
            line = (float(xs[0]), row + 0.5, float(xs[-1]) + 1.0, row + 0.5)
            args = {"line_2d": session.profile.from_view_px(line, views[k].out_size)}
            return Generation(tool_call_text("measure", {**args, "image_index": k}, "Measure it."))
        axial = [k for k, v in enumerate(views) if v.tool == "scroll" and v.reformat is None]
        if axial:  # the slice the overview pointed at, at full size: where is the nodule?
            k = axial[-1]
            ys, _ = np.nonzero(session.pixels(k)[:, :, 0] > self.threshold)
            if not len(ys):
                return None
            _, centre_row = views[k].point_to_original(0.0, float(ys.mean()) + 0.5)
            call = {"plane": "coronal", "slice": int(centre_row)}
            return Generation(tool_call_text("set_plane", call, "Coronal view through it."))
        return Generation(tool_call_text("scroll", {"slice": best}, "That slice, full size."))

    def _answer_from(self, session: EpisodeSession, where: int) -> Generation | None:
        """The answer a finding on slice ``where`` gives, for questions the slice settles."""
        options = session.sample.options
        if "first half" in options:
            n = session.images[0].num_slices
            half = "first half" if where < n // 2 else "second half"
            return Generation(answer_text(half, f"The finding is on slice {where}."))
        if "yes" in options:
            return Generation(answer_text("yes", f"A nodule on slice {where}."))
        return None

    async def generate(self, session: EpisodeSession) -> Generation:
        """The next overview or scroll, or the answer once the finding is seen (or not)."""
        n = session.images[0].num_slices
        options = session.sample.options
        found = self._found(session)
        if n > 1 and "overview" in session.tools:
            best, call = self._search(session)
            if call is not None:
                return call
            if best is not None:
                if any(str(o).startswith("smaller than") for o in options):
                    step = self._measure_size(session, best)
                    if step is not None:
                        return step
                answer = self._answer_from(session, best)
                if answer is not None:
                    return answer
                if found is None and "scroll" in session.tools and session.turns_left > 1:
                    return Generation(tool_call_text("scroll", {"slice": best}, "Look closer."))
            elif found is None:  # searched every range (or out of turns): nothing seen
                searched = _overviewed(session)
                if "yes" in options and all(r[0] in searched for r in self.ranges(n)):
                    return Generation(answer_text("no", "No slice shows a nodule."))
                return Generation(answer_text(_fallback_answer(session, _rng(session))))
        if found is not None:
            where, x = found
            answer = self._answer_from(session, where)
            if answer is not None:
                return answer
            if "left side of the image" in options:
                side = "left" if x < session.images[0].width / 2 else "right"
                return Generation(answer_text(f"{side} side of the image", f"Column {x:.0f}."))
            return Generation(answer_text(_fallback_answer(session, _rng(session))))
        seen = {n // 2 if v.slice_index is None else v.slice_index for v in session.views}
        todo = [k for k in range(self.stride // 2, n, self.stride) if k not in seen]
        if n > 1 and todo and session.turns_left > 1 and "scroll" in session.tools:
            return Generation(tool_call_text("scroll", {"slice": todo[0]}, "Look further."))
        if n > 1 and not todo and "yes" in options:
            return Generation(answer_text("no", "No slice shows a nodule."))
        return Generation(answer_text(_fallback_answer(session, _rng(session))))


class DirectPolicy(PixelReaderPolicy):
    """The no-tool baseline: the pixel reader answering from the first view."""

    def __init__(self) -> None:
        super().__init__(zoom=False)


SCRIPTED_POLICIES: dict[str, Callable[[], Any]] = {
    "oracle": OraclePolicy,
    "teacher": TeacherPolicy,
    "pixel-reader": PixelReaderPolicy,
    "random-zoom": RandomZoomPolicy,
    "direct": DirectPolicy,
    "scroller": ScrollerPolicy,
}


def make_scripted_policy(name: str) -> Any:
    """Build a scripted policy by name."""
    if name not in SCRIPTED_POLICIES:
        raise ConfigError(
            f"unknown policy `{name}`{did_you_mean(name, SCRIPTED_POLICIES)}; "
            f"known: {', '.join(SCRIPTED_POLICIES)}"
        )
    return SCRIPTED_POLICIES[name]()
