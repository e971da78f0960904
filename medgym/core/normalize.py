"""Medical answer normalisation: case, punctuation, articles, yes/no, numbers, units, synonyms.

:func:`normalize_answer` is the one normaliser every score uses. Abbreviations and synonyms go
through a :class:`SynonymTable` that callers can extend (``DEFAULT_SYNONYMS.add("ct",
"cat scan")``) or replace per call.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_SYNONYMS", "SynonymTable", "normalize_answer", "tokens"]

_ARTICLES = {"a", "an", "the"}
_YES = {"yes", "y", "true", "correct", "present", "positive", "yes it is", "there is",
        "affirmative"}  # fmt: skip
_NO = {"no", "n", "false", "incorrect", "absent", "negative", "none", "not present", "there is not",
       "not seen", "normal no"}  # fmt: skip
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "single": "1", "double": "2",
}  # fmt: skip
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "-.%"})
_UNITS = {
    "mm": "mm", "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
    "cm": "cm", "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm",
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "ml": "ml", "milliliter": "ml", "milliliters": "ml", "millilitre": "ml", "millilitres": "ml",
    "cc": "ml", "l": "l", "liter": "l", "liters": "l", "litre": "l", "litres": "l",
    "mg": "mg", "milligram": "mg", "milligrams": "mg", "g": "g", "gram": "g", "grams": "g",
    "kg": "kg", "kilogram": "kg", "kilograms": "kg", "hu": "hu", "hounsfield": "hu",
    "%": "%", "percent": "%", "per cent": "%", "bpm": "bpm", "mmhg": "mmhg",
    "year": "years", "years": "years", "yr": "years", "yrs": "years", "day": "days",
    "days": "days", "week": "weeks", "weeks": "weeks", "month": "months", "months": "months",
}  # fmt: skip
_NUM_UNIT = re.compile(r"(?<![a-z])(\d+(?:\.\d+)?)([a-z%]+)\b")
_DECIMAL_ZERO = re.compile(r"\b(\d+)\.0+\b")


class SynonymTable:
    """Phrases that mean the same thing, mapped to one canonical phrase.

    Matching works on whole tokens of already normalised text, longest phrase first, so
    ``"left lower lobe"`` and ``"lll"`` both become the canonical ``"lll"`` while ``"ct"`` inside
    ``"ctx"`` is left alone.

    Args:
        groups: ``{canonical: [variant, ...]}``; canonical and variants are normalised.

    Example:
        >>> t = SynonymTable({"computed tomography": ["ct", "cat scan"]})
        >>> t.apply("a ct scan".split())
        ['a', 'computed', 'tomography', 'scan']
    """

    def __init__(self, groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self._map: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._max_len = 1
        for canonical, variants in (groups or {}).items():
            self.add(canonical, *variants)

    def add(self, canonical: str, *variants: str) -> None:
        """Map each of ``variants`` (and ``canonical`` itself) to ``canonical``."""
        canon = tuple(_basic(canonical).split())
        if not canon:
            return
        for v in (canonical, *variants):
            key = tuple(_basic(v).split())
            if key:
                self._map[key] = canon
                self._max_len = max(self._max_len, len(key))
        cached = globals().get("_normalize_default")
        if cached is not None:  # the default table's results are cached: drop them
            cached.cache_clear()

    def copy(self) -> SynonymTable:
        """An independent copy (extend it without touching the original)."""
        new = SynonymTable()
        new._map = dict(self._map)
        new._max_len = self._max_len
        return new

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, phrase: str) -> bool:
        return tuple(_basic(phrase).split()) in self._map

    def apply(self, words: list[str]) -> list[str]:
        """Replace every known phrase in ``words`` by its canonical phrase (longest match first)."""
        if not self._map:
            return words
        out: list[str] = []
        i, n = 0, len(words)
        while i < n:
            for size in range(min(self._max_len, n - i), 0, -1):
                hit = self._map.get(tuple(words[i : i + size]))
                if hit is not None:
                    out.extend(hit)
                    i += size
                    break
            else:
                out.append(words[i])
                i += 1
        return out


def _basic(text: str) -> str:
    """Case, accents (NFKC), punctuation, articles, number words, units; no yes/no, no synonyms."""
    t = unicodedata.normalize("NFKC", text).lower().strip()
    t = t.translate(_PUNCT)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)  # keep decimal points only
    t = _DECIMAL_ZERO.sub(r"\1", t)
    t = _NUM_UNIT.sub(lambda m: f"{m.group(1)} {m.group(2)}" if m.group(2) in _UNITS else m[0], t)
    t = t.replace("%", " % ")
    words = [_NUMBER_WORDS.get(w, w) for w in t.split() if w not in _ARTICLES]
    return " ".join(_unit(words))


def _unit(words: list[str]) -> list[str]:
    # A unit word is canonicalised only right after a number, so "m" or "g" elsewhere are kept.
    out: list[str] = []
    for i, w in enumerate(words):
        if "." in w and _is_number(w):
            out.append(w.rstrip("0").rstrip("."))
        elif i and w in _UNITS and _is_number(words[i - 1]):
            out.append(_UNITS[w])
        elif w == "percent" and i and out and out[-1] == "%":
            continue
        else:
            out.append(w)
    return out


def _is_number(w: str) -> bool:
    try:
        float(w)
    except ValueError:
        return False
    return True


DEFAULT_SYNONYMS = SynonymTable(
    {
        "computed tomography": ["ct", "computerized tomography", "computerised tomography",
                                "cat scan", "ct scan"],
        "magnetic resonance imaging": ["mri", "magnetic resonance", "mr", "mr imaging", "mri scan"],
        "x-ray": ["xray", "x ray", "radiograph", "plain film", "plain radiograph", "radiography"],
        "chest x-ray": ["cxr", "chest xray", "chest radiograph", "chest x ray"],
        "ultrasound": ["us scan", "usg", "sonography", "ultrasonography", "sonogram"],
        "positron emission tomography": ["pet", "pet scan"],
        "left lower lobe": ["lll"], "left upper lobe": ["lul"], "right lower lobe": ["rll"],
        "right upper lobe": ["rul"], "right middle lobe": ["rml"],
        "left upper quadrant": ["luq"], "right upper quadrant": ["ruq"],
        "left lower quadrant": ["llq"], "right lower quadrant": ["rlq"],
        "posteroanterior": ["pa", "postero-anterior", "posterior-anterior"],
        "anteroposterior": ["ap", "antero-posterior", "anterior-posterior"],
        "t1": ["t1-weighted", "t1 weighted", "t1w"], "t2": ["t2-weighted", "t2 weighted", "t2w"],
        "fluid attenuated inversion recovery": ["flair", "fluid-attenuated inversion recovery"],
        "diffusion weighted imaging": ["dwi", "diffusion-weighted imaging", "diffusion weighted"],
        "cerebrospinal fluid": ["csf"], "gastrointestinal": ["gi"],
        "inferior vena cava": ["ivc"], "superior vena cava": ["svc"],
        "middle cerebral artery": ["mca"], "anterior cerebral artery": ["aca"],
        "hematoxylin and eosin": ["h&e", "h e", "haematoxylin and eosin"],
        "right": ["rt"], "left": ["lt"],
        "axial": ["transverse plane", "axial plane"], "coronal": ["coronal plane"],
        "sagittal": ["sagittal plane"],
    }
)  # fmt: skip


def normalize_answer(text: str | None, *, synonyms: SynonymTable | None = DEFAULT_SYNONYMS) -> str:
    """Lower-case, strip accents, punctuation and articles, map yes/no, numbers, units, synonyms.

    Args:
        text: The answer; ``None``, non-strings and empty strings give ``""``.
        synonyms: Abbreviation/synonym table applied last; ``None`` turns synonyms off.

    Example:
        >>> normalize_answer("  Yes, there is. ")
        'yes'
        >>> normalize_answer("Two nodules")
        '2 nodules'
        >>> normalize_answer("LLL")
        'left lower lobe'
        >>> normalize_answer("5.0 centimeters")
        '5 cm'
    """
    if not text or not isinstance(text, str):
        return ""
    if synonyms is DEFAULT_SYNONYMS and len(text) <= 200:
        return _normalize_default(text)
    return _normalize(text, synonyms)


@functools.lru_cache(maxsize=65536)
def _normalize_default(text: str) -> str:
    # Group rewards normalise the same short answers over and over; SynonymTable.add clears this.
    return _normalize(text, DEFAULT_SYNONYMS)


def _normalize(text: str, synonyms: SynonymTable | None) -> str:
    joined = _basic(text)
    words = joined.split()
    if joined in _YES or (words and words[0] == "yes"):
        return "yes"
    if joined in _NO or (words and words[0] == "no"):
        return "no"
    if synonyms is not None:
        words = synonyms.apply(words)
    return " ".join(words)


def tokens(text: str | None, *, synonyms: SynonymTable | None = DEFAULT_SYNONYMS) -> list[str]:
    """The normalised tokens of ``text`` (what recall and F1 count)."""
    return normalize_answer(text, synonyms=synonyms).split()
