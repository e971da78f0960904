"""docs/serving.md's settings table states each server setting's default: it must be the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medgym.serving.settings import ServerSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
_UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _value(text: str) -> object:
    """A documented default as a Python value (``64 MiB``, ``10,000``, ``2^28``, ``none``...)."""
    text = text.strip().strip("`")
    if text.startswith("none"):
        return None
    if text.startswith("["):
        return []
    m = re.fullmatch(r"(\d[\d,]*(?:\.\d+)?)\s*(KiB|MiB|GiB)?", text)
    if m:
        number = float(m.group(1).replace(",", ""))
        return number * _UNITS.get(m.group(2) or "", 1)
    m = re.fullmatch(r"(\d+)\^(\d+)", text)
    if m:
        return float(int(m.group(1)) ** int(m.group(2)))
    return text


def _documented() -> dict[str, object]:
    """``MEDGYM_X`` -> its documented default, from the table under ``## Settings``."""
    section = DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    out: dict[str, object] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`MEDGYM_"):
            continue
        names = [n.strip().strip("`") for n in cells[0].split("/")]
        values = [v for v in cells[1].split(" / ")] if len(names) > 1 else [cells[1]]
        assert len(values) == len(names), f"{cells[0]}: {len(names)} names, defaults {cells[1]!r}"
        out.update({n: _value(v) for n, v in zip(names, values, strict=True)})
    return out


DOCUMENTED = _documented()


def test_the_table_names_the_settings_that_decide_limits() -> None:
    fields = {f"MEDGYM_{name.upper()}" for name in ServerSettings.model_fields}
    named = set(DOCUMENTED) & fields
    # the budgets and limits of issue 18 at least; a rename must reach the docs
    for must in ("MEDGYM_CLIENT_HEAVY_RATE", "MEDGYM_CLIENT_HEAVY_BURST", "MEDGYM_REFUSAL_DELAY",
                 "MEDGYM_MAX_QUEUED", "MEDGYM_STORE_MAX_BYTES", "MEDGYM_RENDER_CACHE_BYTES"):  # fmt: skip
        assert must in named, f"{must} is not in the settings table of {DOC.name}"


@pytest.mark.parametrize("variable", sorted(DOCUMENTED))
def test_a_documented_default_is_the_code_default(variable: str) -> None:
    field = variable.removeprefix("MEDGYM_").lower()
    fields = ServerSettings.model_fields
    if field not in fields:
        pytest.skip(f"{variable} is a setting of medgym.settings read elsewhere")
    default = fields[field].get_default(call_default_factory=True)
    documented = DOCUMENTED[variable]
    if isinstance(default, bool | str) or default is None or isinstance(default, list):
        assert documented == default or str(documented).lower() == str(default).lower(), (
            f"{variable}: docs say {documented!r}, the code {default!r}"
        )
    else:
        assert documented == pytest.approx(float(default)), (
            f"{variable}: docs say {documented!r}, the code {default!r}"
        )
