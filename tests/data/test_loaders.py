"""Loaders for public releases, on tiny fixtures built in the published layouts and field names."""

from __future__ import annotations

import csv
import io
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medgym.data import clear_image_cache, load, load_image
from medgym.data.store import ImageStore, set_default_store
from medgym.errors import ConfigError, DatasetError
from medgym.settings import reload_settings


def image_bytes(value: int = 100, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    path.write_bytes(image_bytes(value, fmt))
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def private_store(monkeypatch):
    monkeypatch.delenv("MEDGYM_STORE_DIR", raising=False)
    reload_settings()
    store = ImageStore()
    set_default_store(store)
    clear_image_cache()
    yield store
    set_default_store(None)
    clear_image_cache()


# ------------------------------------------------------------------ VQA-RAD

VQA_RAD_RECORD = {
    "qid": 1,
    "image_name": "synpic54610.jpg",
    "image_organ": "HEAD",
    "answer": "Yes",
    "answer_type": "CLOSED",
    "question_type": "PRES",
    "question": "Are regions of the brain infarcted?",
    "phrase_type": "freeform",
}


def vqa_rad(root: Path, extra: list[dict] | None = None) -> Path:
    records = [
        VQA_RAD_RECORD,
        {**VQA_RAD_RECORD, "qid": 2, "phrase_type": "para", "question": "Is the brain infarcted?"},
        {
            **VQA_RAD_RECORD,
            "qid": 3,
            "image_name": "synpic42202.jpg",
            "image_organ": "CHEST",
            "answer": 1,
            "answer_type": "OPEN ",
            "question_type": "COUNT",
            "question": "How many nodules are there?",
            "phrase_type": "test_freeform",
            "evaluation": "not evaluated",
        },
        *(extra or []),
    ]
    write_json(root / "VQA_RAD Dataset Public.json", records)
    write_image(root / "VQA_RAD Image Folder" / "synpic54610.jpg")
    write_image(root / "VQA_RAD Image Folder" / "synpic42202.jpg", 50)
    return root


def test_vqa_rad_splits_by_phrase_type(tmp_path):
    root = vqa_rad(tmp_path)
    train = load("vqa_rad", root=root, split="train")
    test = load("vqa_rad", root=root, split="test")
    assert [s.id for s in train] == ["vqa_rad:1", "vqa_rad:2"]
    assert [s.id for s in test] == ["vqa_rad:3"]
    assert len(load("vqa_rad", root=root, split="all")) == 3
    first = train[0]
    assert first.question == "Are regions of the brain infarcted?" and first.answer == "Yes"
    assert first.answer_type == "closed" and first.body_part == "HEAD"
    assert first.question_type == "PRES" and first.source == "vqa_rad"
    assert first.meta == {"language": "en", "phrase_type": "freeform"}
    assert Path(first.images[0].uri) == root / "VQA_RAD Image Folder" / "synpic54610.jpg"
    assert test[0].answer == "1" and test[0].answer_type == "open"
    assert test[0].meta["evaluation"] == "not evaluated"
    assert load_image(first.images[0]).size == (16, 16)


def test_vqa_rad_filters_through_load(tmp_path):
    root = vqa_rad(tmp_path)
    assert [s.id for s in load("vqa_rad", root=root, split="all", answer_type="open")] == [
        "vqa_rad:3"
    ]
    assert len(load("vqa_rad", root=root, split="all", language="en", limit=2)) == 2
    assert load("vqa_rad", root=root, split="all", language="zh") == []


def test_vqa_rad_root_from_environment(tmp_path, monkeypatch):
    vqa_rad(tmp_path / "vqa_rad")
    monkeypatch.setenv("MEDGYM_DATA_DIR", str(tmp_path))
    reload_settings()
    assert len(load("vqa_rad")) == 2
    monkeypatch.delenv("MEDGYM_DATA_DIR")
    reload_settings()
    with pytest.raises(ConfigError, match="MEDGYM_DATA_DIR"):
        load("vqa_rad")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"question": None}, "question"),
        ({"answer_type": "MAYBE"}, "answer_type"),
        ({"phrase_type": ""}, "phrase_type"),
        ({"image_name": "synpic00000.jpg"}, "image_name"),
        ({"answer": ["a", "list"]}, "answer"),
    ],
    ids=["no-question", "bad-answer-type", "empty-phrase-type", "missing-image", "list-answer"],
)
def test_vqa_rad_bad_record(tmp_path, change, field):
    bad = {**VQA_RAD_RECORD, "qid": 99, **change}
    root = vqa_rad(tmp_path, extra=[bad])
    pattern = rf"VQA_RAD Dataset Public\.json: record 3 \(id 99\): field `{field}`"
    with pytest.raises(DatasetError, match=pattern):
        load("vqa_rad", root=root, split="all")


def test_vqa_rad_missing_images_can_be_skipped(tmp_path, caplog):
    root = vqa_rad(tmp_path, extra=[{**VQA_RAD_RECORD, "qid": 7, "image_name": "gone.jpg"}])
    with caplog.at_level("WARNING"):
        samples = load("vqa_rad", root=root, split="train", on_missing_image="skip")
    assert [s.id for s in samples] == ["vqa_rad:1", "vqa_rad:2"]
    # one warning that counts them (issue 18, D11), not silence
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and "skipped 1 record(s)" in lines[0] and "gone.jpg" in lines[0]


def test_vqa_rad_unknown_split_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean `train`"):
        load("vqa_rad", root=vqa_rad(tmp_path), split="trian")


def test_missing_release_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"VQA_RAD Dataset Public\.json.*missing"):
        load("vqa_rad", root=tmp_path)


# ------------------------------------------------------------------ SLAKE

SLAKE_RECORD = {
    "img_id": 0,
    "img_name": "xmlab0/source.jpg",
    "question": "What modality is used to take this image?",
    "answer": "MRI",
    "q_lang": "en",
    "location": "Abdomen",
    "modality": "MRI",
    "answer_type": "OPEN",
    "base_type": "vqa",
    "content_type": "Modality",
    "triple": ["vhead", "_", "_"],
    "qid": 9835,
}


def slake(root: Path, train_extra: list[dict] | None = None) -> Path:
    folder = root / "Slake1.0"
    zh = {**SLAKE_RECORD, "qid": 9836, "q_lang": "zh", "question": "这张图片的成像方式是什么?"}
    xray = {
        **SLAKE_RECORD,
        "img_id": 1,
        "img_name": "xmlab1/source.jpg",
        "qid": 9837,
        "question": "Is the lung healthy?",
        "answer": "No",
        "answer_type": "CLOSED",
        "modality": "X-Ray",
        "location": "Lung",
        "content_type": "Abnormality",
    }
    write_json(folder / "train.json", [SLAKE_RECORD, zh, xray, *(train_extra or [])])
    write_json(folder / "validate.json", [{**SLAKE_RECORD, "qid": 1}])
    write_json(folder / "test.json", [{**xray, "qid": 2}])
    write_image(folder / "imgs" / "xmlab0" / "source.jpg")
    write_image(folder / "imgs" / "xmlab1" / "source.jpg", 30)
    return root


def test_slake_fields_and_splits(tmp_path):
    root = slake(tmp_path)
    train = load("slake", root=root)
    assert [s.id for s in train] == ["slake:9835", "slake:9836", "slake:9837"]
    s = train[0]
    assert (s.question, s.answer, s.answer_type) == (SLAKE_RECORD["question"], "MRI", "open")
    assert (s.modality, s.body_part, s.question_type) == ("MRI", "Abdomen", "Modality")
    assert s.meta["language"] == "en" and s.meta["triple"] == ["vhead", "_", "_"]
    assert s.meta["base_type"] == "vqa" and s.meta["img_id"] == 0
    assert load("slake", root=root / "Slake1.0", split="validation")[0].id == "slake:1"
    assert load("slake", root=root, split="test")[0].answer_type == "closed"


def test_slake_filters_through_load(tmp_path):
    root = slake(tmp_path)
    assert [s.id for s in load("slake", root=root, language="zh")] == ["slake:9836"]
    assert [s.id for s in load("slake", root=root, language="en", answer_type="closed")] == [
        "slake:9837"
    ]
    assert [s.id for s in load("slake", root=root, modality="x-ray")] == ["slake:9837"]
    assert len(load("slake", root=root, modality=["MRI", "X-Ray"], language="en")) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"q_lang": None}, "q_lang"),
        ({"answer": ""}, "answer"),
        ({"answer_type": None}, "answer_type"),
        ({"img_name": "xmlab9/source.jpg"}, "img_name"),
    ],
    ids=["no-language", "empty-answer", "no-answer-type", "missing-image"],
)
def test_slake_bad_record(tmp_path, change, field):
    root = slake(tmp_path, train_extra=[{**SLAKE_RECORD, "qid": 5, **change}])
    with pytest.raises(DatasetError, match=rf"train\.json: record 3 \(id 5\): field `{field}`"):
        load("slake", root=root)


# ------------------------------------------------------------------ PathVQA

PATHVQA_ROWS = [
    ("where are liver stem cells (oval cells) located?", "in the canals of hering"),
    (
        "is embolus derived from a lower-extremity deep venous thrombus lodged in a pulmonary "
        "artery branch?",
        "yes",
    ),
]


def pathvqa_parquet(root: Path, split: str = "train", rows=PATHVQA_ROWS, shards: int = 2) -> Path:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    per = -(-len(rows) // shards)
    for k in range(shards):
        chunk = rows[k * per : (k + 1) * per]
        table = pa.table(
            {
                "image": pa.array(
                    [
                        {"bytes": image_bytes(10 * (k + i), "JPEG"), "path": None}
                        for i in range(len(chunk))
                    ],
                    type=image_type,
                ),
                "question": [q for q, _ in chunk],
                "answer": [a for _, a in chunk],
            }
        )
        (root / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / f"{split}-{k:05d}-of-{shards:05d}.parquet")
    return root


def test_pathvqa_parquet_images_go_to_the_store(tmp_path, private_store):
    root = pathvqa_parquet(tmp_path)
    samples = load("pathvqa", root=root)
    assert [s.id for s in samples] == ["pathvqa:train-0", "pathvqa:train-1"]
    assert samples[0].answer == "in the canals of hering" and samples[0].answer_type == "open"
    assert samples[1].answer_type == "closed" and samples[1].modality == "Pathology"
    ref = samples[0].images[0]
    assert ref.uri.startswith("store://") and ref.sha256 in private_store
    assert load_image(ref).size == (16, 16)
    assert load("pathvqa", root=root, answer_type="closed") == [samples[1]]


def test_pathvqa_validation_alias_and_missing_split(tmp_path):
    root = pathvqa_parquet(tmp_path, split="validation", shards=1)
    assert len(load("pathvqa", root=root, split="val")) == 2
    with pytest.raises(DatasetError, match=r"qas/train/train_qa\.pkl"):
        load("pathvqa", root=root, split="train")


def test_pathvqa_parquet_bad_image_bytes(tmp_path):
    root = tmp_path
    table = pa.table(
        {
            "image": [{"bytes": b"not a jpeg", "path": "x.jpg"}],
            "question": ["what is present?"],
            "answer": ["colon"],
        }
    )
    (root / "data").mkdir()
    pq.write_table(table, root / "data" / "test-00000-of-00001.parquet")
    pattern = r"test-00000-of-00001\.parquet: record 0 \(id test-0\): field `image`"
    with pytest.raises(DatasetError, match=pattern):
        load("pathvqa", root=root, split="test")


def pathvqa_original(root: Path, records: list[dict]) -> Path:
    qas = root / "pvqa" / "qas" / "val"
    qas.mkdir(parents=True)
    (qas / "val_qa.pkl").write_bytes(pickle.dumps(records))
    write_image(root / "pvqa" / "images" / "val" / "val_0261.jpg")
    return root


def test_pathvqa_original_pickles(tmp_path):
    record = {
        "image": "val_0261",
        "question": "What have lost their nuclei?",
        "answer": "neutrophils",
    }
    root = pathvqa_original(tmp_path, [record])
    samples = load("pathvqa", root=root, split="validation")
    assert [(s.id, s.answer, s.answer_type) for s in samples] == [
        ("pathvqa:val-0", "neutrophils", "open")
    ]
    assert Path(samples[0].images[0].uri).name == "val_0261.jpg"
    assert samples[0].meta["image"] == "val_0261"


class Sneaky:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pathvqa_pickle_with_code_is_refused(tmp_path, capsys):
    root = pathvqa_original(tmp_path, [{"image": "val_0261", "question": "q", "answer": Sneaky()}])
    with pytest.raises(DatasetError, match=r"refusing to load builtins\.print"):
        load("pathvqa", root=root, split="val")
    assert "pwned" not in capsys.readouterr().out


def test_pathvqa_original_bad_record(tmp_path):
    root = pathvqa_original(tmp_path, [{"image": "val_0261", "answer": "yes"}])
    with pytest.raises(DatasetError, match=r"val_qa\.pkl: record 0 \(id val-0\): field `question`"):
        load("pathvqa", root=root, split="val", layout="original")


# ------------------------------------------------------------------ PMC-VQA

PMC_ROW = {
    "Figure_path": "PMC1064097_F1.jpg",
    "Question": "What is the uptake pattern in the breast?",
    "Answer": "Focal uptake pattern",
    "Choice A": "A:Diffuse uptake pattern",
    "Choice B": "B:Focal uptake pattern",
    "Choice C": "C:No uptake pattern",
    "Choice D": "D:Cannot determine from the information given",
    "Answer_label": "B",
}


def pmc_vqa(root: Path, extra: list[dict] | None = None, split: str = "train") -> Path:
    second = {
        **PMC_ROW,
        "Figure_path": "PMC2_F2.jpg",
        "Question": "Which organ is shown?",
        "Answer": "Liver",
        "Choice A": " A: Liver",
        "Choice B": "B:Kidney",
        "Choice C": "",
        "Choice D": "",
        "Answer_label": "A",
    }
    write_csv(root / f"{split}.csv", [PMC_ROW, second, *(extra or [])])
    write_image(root / "images" / "PMC1064097_F1.jpg")
    write_image(root / "images" / "PMC2_F2.jpg", 200)
    return root


def test_pmc_vqa_choices_and_answer_label(tmp_path):
    samples = load("pmc_vqa", root=pmc_vqa(tmp_path))
    first, second = samples
    assert first.id == "pmc_vqa:train-0" and first.answer_type == "closed"
    assert first.options == (
        "Diffuse uptake pattern",
        "Focal uptake pattern",
        "No uptake pattern",
        "Cannot determine from the information given",
    )
    assert first.answer == "Focal uptake pattern" == first.meta["answer_text"]
    assert second.options == ("Liver", "Kidney") and second.answer == "Liver"
    assert Path(first.images[0].uri) == tmp_path / "images" / "PMC1064097_F1.jpg"


def test_pmc_vqa_version_two_uses_images2(tmp_path):
    write_csv(tmp_path / "test2.csv", [PMC_ROW])
    write_image(tmp_path / "images2" / "PMC1064097_F1.jpg")
    [sample] = load("pmc_vqa", root=tmp_path, split="test2")
    assert Path(sample.images[0].uri).parent.name == "images2"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Answer_label": "E"}, "Answer_label"),
        ({"Answer_label": "D", "Choice D": ""}, "Answer_label"),
        ({"Choice A": "A:"}, "Choice A"),
        ({"Question": ""}, "Question"),
        ({"Figure_path": "nowhere.jpg"}, "Figure_path"),
    ],
    ids=["label-E", "label-of-blank-choice", "prefix-only", "no-question", "missing-image"],
)
def test_pmc_vqa_bad_row(tmp_path, change, field):
    root = pmc_vqa(tmp_path, extra=[{**PMC_ROW, **change}])
    with pytest.raises(
        DatasetError, match=rf"train\.csv: record 2 \(id train-2\): field `{field}`"
    ):
        load("pmc_vqa", root=root)


# ------------------------------------------------------------------ OmniMedVQA

OMNI_RECORD = {
    "question_id": "Chest CT Scan_0",
    "dataset": "Chest CT Scan",
    "question_type": "Modality Recognition",
    "question": "What imaging technique is employed for obtaining this image?",
    "gt_answer": "CT",
    "option_A": "Mammogram",
    "option_B": "PET",
    "option_C": "CT",
    "option_D": "Fluoroscopy",
    "image_path": "Images/Chest CT Scan/test/adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib/"
    "000139 (9).png",
    "modality_type": "CT(Computed Tomography)",
}


def omnimedvqa(root: Path, extra: list[dict] | None = None) -> Path:
    release = root / "OmniMedVQA"
    fundus = {
        "question_id": "RFMiD_1",
        "dataset": "RFMiD",
        "question_type": "Disease Diagnosis",
        "question": "Is there an abnormality?",
        "gt_answer": "No",
        "option_A": "Yes",
        "option_B": "No",
        "image_path": "Images/RFMiD/1.png",
        "modality": "Fundus Photography",  # the release's one-off key spelling
    }
    write_json(release / "QA_information" / "Open-access" / "Chest CT Scan.json", [OMNI_RECORD])
    write_json(release / "QA_information" / "Open-access" / "RFMiD.json", [fundus, *(extra or [])])
    restricted = {**OMNI_RECORD, "question_id": "MSD_0", "dataset": "MSD"}
    restricted["image_path"] = "Images/MSD/0.png"
    write_json(release / "QA_information" / "Restricted-access" / "MSD.json", [restricted])
    write_image(release / OMNI_RECORD["image_path"])
    write_image(release / "Images" / "RFMiD" / "1.png")
    return root


def test_omnimedvqa_open_access(tmp_path):
    samples = load("omnimedvqa", root=omnimedvqa(tmp_path))
    assert [s.id for s in samples] == ["omnimedvqa:Chest CT Scan_0", "omnimedvqa:RFMiD_1"]
    ct, fundus = samples
    assert ct.options == ("Mammogram", "PET", "CT", "Fluoroscopy") and ct.answer == "CT"
    assert ct.answer_type == "closed" and ct.modality == "CT(Computed Tomography)"
    assert ct.question_type == "Modality Recognition"
    assert ct.meta["dataset"] == "Chest CT Scan" and ct.meta["access"] == "Open-access"
    assert fundus.options == ("Yes", "No") and fundus.modality == "Fundus Photography"
    assert load_image(ct.images[0]).size == (16, 16)


def test_omnimedvqa_access_and_dataset_filter(tmp_path):
    root = omnimedvqa(tmp_path)
    with pytest.raises(DatasetError, match=r"MSD\.json: record 0 \(id MSD_0\): field `image_path`"):
        load("omnimedvqa", root=root, split="all")
    everything = load("omnimedvqa", root=root, split="all", on_missing_image="skip")
    assert len(everything) == 2
    only = load("omnimedvqa", root=root / "OmniMedVQA", datasets=["RFMiD"])
    assert [s.id for s in only] == ["omnimedvqa:RFMiD_1"]
    assert [s.id for s in load("omnimedvqa", root=root, modality="fundus photography")] == [
        "omnimedvqa:RFMiD_1"
    ]
    with pytest.raises(ConfigError, match="did you mean `RFMiD`"):
        load("omnimedvqa", root=root, datasets=["RFMID"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gt_answer": "Maybe"}, "gt_answer"),
        ({"question_id": None}, "question_id"),
        ({"image_path": None}, "image_path"),
    ],
    ids=["answer-not-an-option", "no-id", "no-image-path"],
)
def test_omnimedvqa_bad_record(tmp_path, change, field):
    bad = {**OMNI_RECORD, "question_id": "bad_1", **change}
    root = omnimedvqa(tmp_path, extra=[bad])
    with pytest.raises(DatasetError, match=rf"RFMiD\.json: record 1\b.*field `{field}`"):
        load("omnimedvqa", root=root)


# ------------------------------------------------------------------ generic


def test_generic_jsonl_with_defaults_and_paths_relative_to_the_file(tmp_path):
    folder = tmp_path / "my_set"
    write_image(folder / "imgs" / "a.png")
    write_image(folder / "imgs" / "b.png", 9)
    rows = [
        {
            "id": "q1",
            "image": "imgs/a.png",
            "question": "Is there a nodule?",
            "answer": "yes",
            "modality": "CT",
            "evidence": [[1, 2, 8, 9]],
            "site": "A",
        },
        {
            "id": "q2",
            "images": ["imgs/a.png", "imgs/b.png"],
            "question": "Which is larger?",
            "options": ["left", "right"],
            "answer": "B",
            "language": "EN",
        },
        {"image": "imgs/b.png", "question": "Describe the image."},
    ]
    folder.mkdir(exist_ok=True)
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b, c = load("generic", root=folder)
    assert (a.id, a.answer_type, a.modality, a.meta) == (
        "generic:q1",
        "closed",
        "CT",
        {"site": "A"},
    )
    assert a.evidence[0].bbox_px == (1, 2, 8, 9)
    assert len(b.images) == 2 and b.answer == "right" and b.meta["language"] == "en"
    assert c.id == "generic:2" and c.answer is None and c.answer_type == "open"
    assert Path(a.images[0].uri) == folder / "imgs" / "a.png"


def test_generic_csv_with_field_mapping(tmp_path):
    write_image(tmp_path / "x.png")
    write_csv(
        tmp_path / "data.csv",
        [
            {
                "qid": "7",
                "file": "x.png",
                "q": "Pick one",
                "a": "b",
                "choices": '["a", "b"]',
                "kind": "CLOSED",
                "lang": "de",
            },
        ],
    )
    mapping = {"id": "qid", "image": "file", "question": "q", "answer": "a", "options": "choices"}
    mapping |= {"answer_type": "kind", "language": "lang"}
    [s] = load(
        "generic", root=tmp_path / "data.csv", fields=mapping, dataset_name="mine", language="de"
    )
    assert (s.id, s.source, s.options, s.answer, s.answer_type) == (
        "mine:7",
        "mine",
        ("a", "b"),
        "b",
        "closed",
    )
    assert s.meta == {"language": "de"}


def test_generic_parquet_and_json_with_embedded_bytes(tmp_path, private_store):
    table = pa.table({"image": [image_bytes(42)], "question": ["What is it?"], "answer": ["x"]})
    pq.write_table(table, tmp_path / "test.parquet")
    [s] = load("generic", root=tmp_path, split="test")
    assert s.images[0].uri.startswith("store://") and s.images[0].sha256 in private_store
    write_image(tmp_path / "p.png")
    write_json(tmp_path / "val.json", [{"image": "p.png", "question": "q?"}])
    assert load("generic", root=tmp_path, split="val")[0].images[0].uri.endswith("p.png")


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"image": "p.png"}, "question"),
        ({"question": "q"}, "image"),
        ({"image": "p.png", "question": "q", "options": "not json"}, "options"),
        ({"image": "p.png", "question": "q", "options": ["a", "b"], "answer": "z"}, "answer"),
        ({"image": "p.png", "question": "q", "evidence": [[5, 5, 1, 1]]}, "evidence"),
        ({"image": "p.png", "question": "q", "answer_type": "multiple"}, "answer_type"),
        ({"image": "missing.png", "question": "q"}, "image"),
        ({"images": [], "question": "q"}, "images"),
    ],
    ids=[
        "no-question",
        "no-image",
        "options-not-a-list",
        "answer-not-an-option",
        "inverted-box",
        "bad-answer-type",
        "missing-image",
        "empty-images",
    ],
)
def test_generic_bad_row(tmp_path, row, field):
    write_image(tmp_path / "p.png")
    good = {"id": "ok", "image": "p.png", "question": "fine?"}
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"id": "r1", **row}))
    with pytest.raises(DatasetError, match=rf"train\.jsonl: record 1 \(id r1\): field `{field}`"):
        load("generic", root=tmp_path)


def test_generic_keeps_uris_of_known_schemes(tmp_path, private_store):
    ref = private_store.put_bytes(image_bytes(3), suffix=".png")
    write_image(tmp_path / "f.png")
    rows = [
        {"image": ref.uri, "question": "stored?"},
        {"image": f"file://{tmp_path / 'f.png'}", "question": "file?"},
        {"image": "store://" + "0" * 64, "question": "unknown?"},
    ]
    write_json(tmp_path / "train.json", rows)
    with pytest.raises(
        DatasetError, match=r"record 2 \(id 2\): field `image` refers to store://0+"
    ):
        load("generic", root=tmp_path)
    write_json(tmp_path / "train.json", rows[:2])
    a, b = load("generic", root=tmp_path)
    assert a.images[0] == ref and load_image(a.images[0]).size == (16, 16)
    assert Path(b.images[0].uri) == tmp_path / "f.png"


def test_generic_bad_table_and_mapping(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"image": "p.png"\n')
    with pytest.raises(DatasetError, match=r"train\.jsonl: line 1 is not valid JSON"):
        load("generic", root=tmp_path)
    with pytest.raises(DatasetError, match="no table for split 'test'"):
        load("generic", root=tmp_path, split="test")
    with pytest.raises(ConfigError, match="did you mean `question`"):
        load("generic", root=tmp_path, fields={"questoin": "q"})


# ------------------------------------------------------------------ hf_disk


def test_hf_disk_saved_dataset(tmp_path, private_store):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "query": datasets.Value("string"),
            "label": datasets.Value("string"),
            "modality": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "image": [Image.new("L", (12, 10), 5), Image.new("RGB", (6, 4), (1, 2, 3))],
            "query": ["Is it gray?", "What colour?"],
            "label": ["yes", "blue"],
            "modality": ["CT", "photo"],
        },
        features=features,
    )
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(tmp_path / "saved")
    mapping = {"question": "query", "answer": "label"}
    samples = load("hf_disk", root=tmp_path / "saved", split="train", fields=mapping)
    assert [s.id for s in samples] == ["hf_disk:0", "hf_disk:1"]
    assert samples[0].answer_type == "closed" and samples[1].answer_type == "open"
    assert load_image(samples[0].images[0]).size == (12, 10)
    assert load_image(samples[1].images[0]).is_color
    assert all(s.images[0].sha256 in private_store for s in samples)
    assert [
        s.id for s in load("hf_disk", root=tmp_path / "saved", split="test", fields=mapping)
    ] == ["hf_disk:0"]
    assert len(load("hf_disk", root=tmp_path / "saved", fields=mapping, modality="ct")) == 1
    with pytest.raises(ConfigError, match="did you mean `test`"):
        load("hf_disk", root=tmp_path / "saved", split="tset", fields=mapping)
    with pytest.raises(DatasetError, match="question"):
        load("hf_disk", root=tmp_path / "saved", split="train")  # no `question` column


def test_hf_disk_not_a_saved_dataset(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(DatasetError, match="save_to_disk"):
        load("hf_disk", root=tmp_path)


# ---------------------------------------------------------------------- issue 18 D11
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"image": "p.png", "question": "q", "x": ' + "[" * 5000 + "]" * 5000 + "}",
         "line 1 nests JSON too deeply"),
        ('{"image": {"bytes": "abc"}, "question": "q"}', "`bytes` of type str"),
        ('{"image": "bad.png", "question": "q"}', "not an image file"),
        ('{"image": "../p.png", "question": "q"}', "must stay inside the dataset folder"),
        ('{"image": "/etc/passwd", "question": "q"}', "must stay inside the dataset folder"),
        ('{"image": "p.png", "question": "q", "evidence": [{"bbox_px": [0, 0, NaN, 4]}]}',
         "field `evidence`"),
    ],
    ids=["deep-json", "bytes-str", "corrupt", "dotdot", "absolute", "nan-box"],
)  # fmt: skip
def test_generic_bad_records_fail_at_load_with_the_record_named(
    tmp_path: Path, text: str, match: str
) -> None:
    write_image(tmp_path / "p.png")
    (tmp_path / "bad.png").write_bytes(b"hello, not an image at all")
    (tmp_path / "train.jsonl").write_text(text)
    with pytest.raises(DatasetError, match=match):
        load("generic", root=tmp_path)


def test_file_uri_may_name_an_image_anywhere(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_image(outside / "x.png")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"image": f"file://{outside / 'x.png'}",
                                                  "question": "q"}))  # fmt: skip
    assert load("generic", root=data)[0].images[0].uri.endswith("x.png")


def test_unknown_loader_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takes no option `on_missing`; did you mean"):
        load("generic", root=tmp_path, on_missing="skip")


def test_duplicate_ids_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_image(tmp_path / "p.png")
    rows = [{"id": "a", "image": "p.png", "question": "q"}] * 3
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with caplog.at_level(logging.WARNING):
        assert len(load("generic", root=tmp_path)) == 3
    assert "2 sample(s) repeat an earlier id" in caplog.text


def test_headerless_pmc_csv_is_an_error_not_zero_samples(tmp_path: Path) -> None:
    (tmp_path / "pmc_vqa").mkdir()
    (tmp_path / "pmc_vqa" / "train.csv").write_text("a.jpg,What is shown?,A: x,B: y,A\n")
    with pytest.raises(DatasetError, match=r"no column.*Figure_path.*without a header line"):
        load("pmc_vqa", root=tmp_path / "pmc_vqa", split="train")
