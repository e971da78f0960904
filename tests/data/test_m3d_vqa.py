"""M3D-VQA in its published CSV layout, and the NumPy volumes it points to."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import medgym  # noqa: F401  (registers the envs)
from medgym.data import load, load_image
from medgym.data.io import read_image_bytes, read_image_file
from medgym.errors import DatasetError

HEADER = [
    "Image Path", "Text", "Question Type", "Question", "Choice A", "Choice B", "Choice C",
    "Choice D", "Answer", "Answer Choice",
]  # fmt: skip


def _volume(path: Path, seed: int = 0) -> None:
    """A (1, D, H, W) float array in [0, 1], as M3D's preprocessing writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(path, rng.random((1, 32, 64, 64), dtype=np.float32))


def _release(root: Path, rows: list[list[str]], split: str = "test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"M3D_VQA_{split}.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return root


ROWS = [
    ["ct_quizze/000001/Axial.npy", "Report: a 3 cm hypodense lesion in segment VII.", "1",
     "In which plane is this CT image displayed?", "Sagittal", "Axial", "Coronal", "Oblique",
     "Axial", "B"],
    ["ct_quizze/000001/Axial.npy", "Report: ...", "5", "Where is the lesion located?",
     "Left lobe", "Segment VII", "NA", "NA", "Segment VII", "B"],
]  # fmt: skip


def test_rows_become_closed_questions_on_volumes(tmp_path):
    _volume(tmp_path / "ct_quizze/000001/Axial.npy")
    root = _release(tmp_path, ROWS)
    first, second = load("m3d_vqa", root=root)
    assert first.id == "m3d_vqa:test-0" and first.answer_type == "closed"
    assert first.options == ("Sagittal", "Axial", "Coronal", "Oblique") and first.answer == "Axial"
    assert first.question_type == "plane" and first.modality == "CT"
    assert second.options == ("Left lobe", "Segment VII")  # NA choices dropped
    assert second.question_type == "location"
    assert "Report" not in str(first.meta)  # the report holds the answer: not in the sample
    image = load_image(first.images[0])
    assert image.num_slices == 32 and image.size == (64, 64)
    assert image.meta["format"] == "NumPy" and image.spacing_mm is None


#: The record M3D's generator source shows as its output (report shortened).
PUBLISHED = [
    "M3D_Cap_npy/ct_case/007789/Axial_Zoomed___thin_cuts.npy",
    "Tree in bud nodules noted within the left inferior lingula with peribronchial thickening, "
    "may suggest pulmonary infection. Scans through the upper abdomen revealed enlarged fatty "
    "liver (20 cm in MCL).",
    "3", "Which organ is primarily affected by the abnormality described in the image?",
    "Lung", "Liver", "Trachea", "Lymph nodes", "Lung", "A",
]  # fmt: skip


def test_the_published_record_loads_as_its_docstring_says(tmp_path):
    _volume(tmp_path / PUBLISHED[0])
    (sample,) = load("m3d_vqa", root=_release(tmp_path, [PUBLISHED], split="train"), split="train")
    assert sample.id == "m3d_vqa:train-0" and sample.question_type == "organ"
    assert sample.options == ("Lung", "Liver", "Trachea", "Lymph nodes")
    assert sample.answer == "Lung" and sample.answer_type == "closed"
    assert "fatty" not in str(sample.meta) and "fatty" not in sample.question
    assert load_image(sample.images[0]).num_slices == 32


def test_open_ended_keeps_the_answer_text(tmp_path):
    _volume(tmp_path / "ct_quizze/000001/Axial.npy")
    (s, _) = load("m3d_vqa", root=_release(tmp_path, ROWS), closed=False)
    assert s.answer_type == "open" and s.options == () and s.answer == "Axial"


def test_a_volume_episode_runs_on_an_m3d_sample(tmp_path):
    _volume(tmp_path / "ct_quizze/000001/Axial.npy")
    samples = load("m3d_vqa", root=_release(tmp_path, ROWS))
    env = gym.make("MedVQA-Volume-v0", samples=samples)
    env.reset(seed=0, options={"sample_id": samples[0].id})
    call = '<tool_call>{"name": "set_plane", "arguments": {"plane": "coronal"}}</tool_call>'
    obs, _, _, _, _ = env.step(call)
    assert "coronal plane 32 of 64" in obs["text"]
    obs, reward, terminated, _, _ = env.step("<answer>B</answer>")
    assert terminated and reward > 0


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        (["missing.npy", "", "1", "Q?", "a", "b", "", "", "a", "A"], "does not exist"),
        (["ct_quizze/000001/Axial.npy", "", "1", "Q?", "a", "NA", "", "", "a", "A"],
         "at least two choices"),
        (["ct_quizze/000001/Axial.npy", "", "1", "Q?", "a", "b", "", "", "a", "C"],
         r"should be one of A, B; got 'C'"),
    ],
    ids=["missing-volume", "one-choice", "bad-letter"],
)  # fmt: skip
def test_bad_rows_name_the_field(tmp_path, row, pattern):
    _volume(tmp_path / "ct_quizze/000001/Axial.npy")
    with pytest.raises(DatasetError, match=pattern):
        load("m3d_vqa", root=_release(tmp_path, [row]))


def test_a_missing_split_lists_the_csvs_there(tmp_path):
    _release(tmp_path, [], split="train")
    with pytest.raises(DatasetError, match=r"no M3D_VQA_test\.csv .* found M3D_VQA_train\.csv"):
        load("m3d_vqa", root=tmp_path)


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.zeros((2, 4, 8, 8), np.float32), r"shape \(2, 4, 8, 8\)"),
        (np.zeros((4, 4), np.complex64), "not images"),
        (np.array([{"a": 1}], dtype=object), "not images"),
    ],
    ids=["two-channels", "complex", "pickle"],
)
def test_npy_arrays_that_are_no_image_are_refused(tmp_path, array, pattern):
    path = tmp_path / "x.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DatasetError, match=pattern):
        read_image_file(path)


def test_npy_bytes_and_a_truncated_file(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.arange(2 * 16 * 16, dtype=np.int16).reshape(2, 16, 16))
    img = read_image_bytes(path.read_bytes(), name="upload.npy")
    assert img.pixels.shape == (2, 16, 16, 1) and img.pixels.dtype == np.int16
    with pytest.raises(DatasetError, match="truncated"):
        read_image_bytes(path.read_bytes()[:-100], name="cut.npy")
