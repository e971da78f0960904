"""The demo's install provides what the demo imports.

`make demo` installs medgym with the extras of its Makefile target only. A module imported at
load time but declared in another extra (``pydantic_settings``, imported by ``medgym.settings``
and declared only in ``serve``) passed every test, since the test venv has every extra, and
made ``make demo`` fail on a fresh clone. This test imports the demo's modules in a fresh
interpreter, maps every third-party module it loaded to its distribution and checks that the
distribution is in the requirement closure of ``medgym[<the demo's extras>]``, read from
``pyproject.toml`` and the ``Makefile`` (installed metadata for everything below medgym).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]

#: What `medgym demo` loads before its first lazy import (the CLI, data, envs, agents, rewards,
#: evaluation and the learning benchmark), then a `synthetic` load through the settings.
_IMPORTS = r"""
import json, sys
before = {m.split(".")[0] for m in sys.modules}
import medgym.cli, medgym.data, medgym.settings, medgym.agents, medgym.eval, medgym.envs
import medgym.rewards, medgym.eval.report, medgym.learning.bench, medgym.learning.grpo
from medgym.data import load
load("synthetic", split="test", num_samples=2)
new = {m.split(".")[0] for m in sys.modules} - before
print(json.dumps(sorted(
    m for m in new if m not in sys.stdlib_module_names and not m.startswith("_") and m != "medgym"
)))
"""


def _demo_extras() -> tuple[str, ...]:
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^\$\(VENV\)/\.installed-demo:.*\n\t.*-e \"\.\[([a-z,]+)\]\"", make, re.M)
    assert target, "the Makefile's .installed-demo target no longer installs -e .[extras]"
    return tuple(target.group(1).split(","))


def _closure(extras: tuple[str, ...]) -> set[str]:
    """Canonical names of every distribution ``medgym[extras]`` pulls in (installed ones)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]

    def own(wanted: frozenset[str]) -> list[str]:
        reqs = list(project["dependencies"])
        for extra in wanted:
            reqs += optional[extra]
        return reqs

    found: set[str] = {"medgym"}
    seen: set[tuple[str, frozenset[str]]] = set()
    stack: list[tuple[str, frozenset[str]]] = [("medgym", frozenset(extras))]
    while stack:
        name, wanted = stack.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        if name == "medgym":
            requires = own(wanted)
        else:
            try:
                requires = distribution(name).requires or []
            except PackageNotFoundError:  # an optional dependency not installed here
                continue
        for line in requires:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                key = canonicalize_name(req.name)
                found.add(key)
                stack.append((key, frozenset(req.extras)))
    return found


def test_the_demo_install_provides_every_module_the_demo_imports() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "numpy" in modules and "pydantic_settings" in modules  # the check sees imports
    provided = _closure(_demo_extras())
    owners = packages_distributions()
    missing = {
        m: dists
        for m in modules
        if (dists := owners.get(m)) and not {canonicalize_name(d) for d in dists} & provided
    }
    assert not missing, (
        f"imported by the demo but not installed by medgym[{','.join(_demo_extras())}]: "
        f"{missing}; declare them in the core dependencies or in one of those extras"
    )


def test_the_closure_follows_extras_and_markers() -> None:
    """The control: without the fix, `pydantic-settings` was reachable only through `serve`."""
    with_serve = _closure(("serve",))
    assert {"fastapi", "uvicorn", "pydantic-settings"} <= with_serve
    assert "fastapi" not in _closure(())
