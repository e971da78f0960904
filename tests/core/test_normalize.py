from __future__ import annotations

import pytest

from medgym.core.normalize import DEFAULT_SYNONYMS, SynonymTable, normalize_answer, tokens


@pytest.mark.parametrize(
    ("text", "norm"),
    [("LLL", "left lower lobe"), ("left lower lobe", "left lower lobe"),
     ("CT", "computed tomography"), ("CT scan", "computed tomography"),
     ("MRI", "magnetic resonance imaging"), ("Xray", "x-ray"),
     ("10cm", "10 cm"), ("5.0 millimetres", "5 mm"), ("1.50 cm", "1.5 cm"), ("50 percent", "50 %"),
     ("50%", "50 %"), ("H&E", "hematoxylin and eosin"), ("twenty", "20"), ("Affirmative", "yes"),
     ("not seen", "no"), ("the RUL", "right upper lobe"), ("ctx", "ctx"), ("m", "m"),
     ("5 m", "5 m"), ("he", "he"), (12, ""), ("   ", "")],
    ids=["abbr-lll", "long-lll", "ct", "ct-scan", "mri", "xray", "unit-glued", "unit-word-decimal",
         "trailing-zero", "percent-word", "percent-sign", "h-and-e", "number-20", "yes-variant",
         "no-variant", "article-abbr", "no-partial-token", "lone-unit-letter", "metre",
         "pronoun-kept", "non-string", "blank"],
)  # fmt: skip
def test_normalize_medical(text: object, norm: str) -> None:
    assert normalize_answer(text) == norm  # type: ignore[arg-type]


def test_synonyms_off_and_custom_table() -> None:
    assert normalize_answer("LLL", synonyms=None) == "lll"
    table = SynonymTable({"pneumothorax": ["ptx"]})
    assert normalize_answer("PTX", synonyms=table) == "pneumothorax"
    assert normalize_answer("LLL", synonyms=table) == "lll"
    assert "ptx" in table and len(table) == 2


def test_extending_a_copy_leaves_default_alone() -> None:
    table = DEFAULT_SYNONYMS.copy()
    table.add("pneumothorax", "ptx")
    assert normalize_answer("ptx", synonyms=table) == "pneumothorax"
    assert normalize_answer("ptx") == "ptx"


def test_adding_to_default_clears_cache() -> None:
    assert normalize_answer("zz-unique-term") == "zz-unique-term"
    DEFAULT_SYNONYMS.add("zz canonical", "zz-unique-term")
    try:
        assert normalize_answer("zz-unique-term") == "zz canonical"
    finally:
        DEFAULT_SYNONYMS._map.pop(("zz-unique-term",))
        DEFAULT_SYNONYMS._map.pop(("zz", "canonical"))
        normalize_answer.__globals__["_normalize_default"].cache_clear()


def test_tokens_expand_abbreviations_for_partial_credit() -> None:
    assert tokens("LLL nodule") == ["left", "lower", "lobe", "nodule"]
