"""``set_plane``: coronal and sagittal reformats in voxel coordinates, not squashed, measurable."""

from __future__ import annotations

import numpy as np
import pytest

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Sample
from medgym.core.trajectory import Group, ToolCallRecord, Trajectory, Turn
from medgym.core.view import ViewSpec, full_view, render
from medgym.errors import ToolError
from medgym.rewards.cca import footprint_keys, footprints
from medgym.tools import TOOLS, ImageInfo, ToolContext

S, H, W = 20, 48, 64  # slices, rows, columns


def _volume(**kwargs: object) -> MedImage:
    """Voxel (s, r, c) holds s + 100 * (r >= 24) + (c >= 32) * 50: every plane names its cut."""
    s, r, c = np.meshgrid(np.arange(S), np.arange(H), np.arange(W), indexing="ij")
    pixels = (s + 100 * (r >= 24) + 50 * (c >= 32)).astype(np.uint8)[..., None]
    return MedImage(pixels=pixels, **kwargs)  # type: ignore[arg-type]


def _ctx(image: MedImage, *views: object) -> ToolContext:
    first = full_view(image, (64, 48))
    return ToolContext(views=(first, *views), images=(ImageInfo.of(image),))  # type: ignore[arg-type]


def test_coronal_plane_is_one_row_of_every_slice_last_slice_on_top() -> None:
    image = _volume()
    res = TOOLS["set_plane"](_ctx(image), {"plane": "coronal", "slice": 30})
    view = res.view
    assert view is not None and view.reformat == "coronal" and view.slice_index == 30
    assert view.bbox_px == (0.0, 0.0, float(W), float(S)) and view.flip_v
    assert "coronal plane 30 of 48" in res.text and "64x20 voxels" in res.text
    px = render(image, view.model_copy(update={"out_size": (W, S)}))[..., 0].astype(int)
    # row 30 >= 24: +100; the top row is the last slice (19), the bottom row slice 0
    assert px[0, 0] == 119 and px[-1, 0] == 100 and px[-1, -1] == 150


def test_sagittal_plane_runs_along_the_rows() -> None:
    image = _volume()
    view = TOOLS["set_plane"](_ctx(image), {"plane": "sagittal", "slice": 10}).view
    assert view is not None and view.bbox_px == (0.0, 0.0, float(H), float(S))
    px = render(image, view.model_copy(update={"out_size": (H, S)}))[..., 0].astype(int)
    # column 10 < 32: no +50; x runs over rows (row 47 at the right: +100)
    assert px[-1, 0] == 0 and px[-1, -1] == 100 and px[0, 0] == 19


def test_anisotropic_slices_are_not_squashed() -> None:
    image = _volume(spacing_mm=(0.8, 0.8), slice_spacing_mm=4.0)  # 5x thicker slices
    view = TOOLS["set_plane"](_ctx(image), {"plane": "coronal"}).view
    assert view is not None
    w, h = view.out_size
    # physical size 64 x 0.8 = 51.2 mm wide, 20 x 4 = 80 mm tall
    assert h / w == pytest.approx(80 / 51.2, rel=0.1)


def test_zoom_scroll_and_measure_work_in_the_reformat() -> None:
    image = _volume(spacing_mm=(0.8, 0.8), slice_spacing_mm=4.0)
    plane = TOOLS["set_plane"](_ctx(image), {"plane": "coronal", "slice": 30}).view
    assert plane is not None
    ctx = _ctx(image, plane)
    vw, vh = plane.out_size
    # the top half of the displayed plane: the last 10 slices (flip_v), all columns
    zoom = TOOLS["zoom_in"](ctx, {"bbox_2d": [0, 0, vw, vh / 2], "image_index": 1}).view
    assert zoom is not None and zoom.reformat == "coronal" and zoom.slice_index == 30
    assert zoom.bbox_px == (0.0, 10.0, 64.0, 20.0)
    assert zoom.out_size[1] / zoom.out_size[0] == pytest.approx(40 / 51.2, rel=0.15)
    moved = TOOLS["scroll"](ctx, {"step": -10, "image_index": 1})
    assert moved.view is not None and moved.view.slice_index == 20
    assert "Coronal plane 20 of 48" in moved.text
    with pytest.raises(ToolError, match=r"coronal plane 48 is outside the volume"):
        TOOLS["scroll"](ctx, {"slice": 48, "image_index": 1})
    # top to bottom of the displayed plane: 20 slices of 4 mm
    res = TOOLS["measure"](ctx, {"line_2d": [0, 0, 0, vh], "image_index": 1})
    assert "80.0 mm" in res.text


@pytest.mark.parametrize(
    ("image", "args", "match"),
    [
        (MedImage(pixels=np.zeros((1, 32, 32, 1), np.uint8)), {"plane": "coronal"}, "single 2D"),
        (_volume(meta={"plane": "sagittal"}), {"plane": "coronal"}, "acquired in the sagittal"),
        (_volume(), {"plane": "axial"}, "already shows the axial plane"),
        (_volume(), {"plane": "sagittal", "slice": 64}, r"has 64 positions \(0\.\.63\)"),
        (_volume(), {"plane": "oblique"}, "plane"),
    ],
    ids=["2d", "sagittal-stack", "same-plane", "past-end", "unknown-plane"],
)
def test_bad_plane_requests_are_tool_errors(image: MedImage, args: dict, match: str) -> None:
    with pytest.raises(ToolError, match=match):
        TOOLS["set_plane"](_ctx(image), args)


def _trajectory(name: str, *calls: ToolCallRecord) -> Trajectory:
    turn = Turn(index=0, action="", tool_calls=list(calls))
    first = ViewSpec(bbox_px=(0, 0, W, H), out_size=(W, H))
    return Trajectory(id=name, sample_id="v", turns=[turn], views=[first])


def test_cca_footprints_of_a_coronal_look_land_on_the_axial_slices() -> None:
    sample = Sample(id="v", images=(ImageRef(uri="v.nii"),), question="Where?", answer="x")
    axial = ToolCallRecord(
        name="zoom_in", ok=True, view_index=1, image_index=0, slice_index=5,
        bbox_px=(0.0, 20.0, 32.0, 30.0),
    )  # fmt: skip
    coronal = ToolCallRecord(
        name="zoom_in", ok=True, view_index=1, image_index=0, slice_index=25,
        reformat="coronal", bbox_px=(0.0, 4.0, 32.0, 7.0),  # columns 0-32, slices 4-6
    )  # fmt: skip
    plane = ToolCallRecord(
        name="set_plane", ok=True, view_index=1, image_index=0, slice_index=25,
        reformat="coronal", bbox_px=(0.0, 0.0, 64.0, 20.0),
    )  # fmt: skip
    group = Group(
        id="g",
        sample=sample,
        trajectories=[_trajectory("a", axial), _trajectory("b", coronal, plane)],
    )
    keys = footprint_keys(group, slice_tolerance=0)
    assert [k for k in keys if k[1] is not None] == [(0, 4), (0, 5), (0, 6)]  # not all 20
    fp = footprints(group, grid=16, slice_tolerance=0)
    on_5 = keys.index((0, 5))
    assert (fp[0, on_5] & fp[1, on_5]).any()  # the two looks overlap on slice 5, row 25
