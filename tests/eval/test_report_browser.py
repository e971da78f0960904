"""The report in a real headless Chromium: no console errors, boxes visible, a screenshot.

Skips with a reason where Chromium is not installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medgym.eval.harness import EvalResult

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)"
)

_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]? ?\"(?P<msg>.*)\", source: (?P<src>\S+)")


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM), *_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *extra, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def _console_messages(stderr: str) -> list[str]:
    return [m.group("msg") for m in _CONSOLE.finditer(stderr)]


def test_console_checker_sees_errors(tmp_path: Path) -> None:
    # The control: a broken page must be caught, or a clean result below means nothing.
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><script>console.error('boom'); missingFn();</script></body></html>"
    )
    proc = _chromium(page, tmp_path / "profile", "--dump-dom")
    msgs = _console_messages(proc.stderr)
    assert any("boom" in m for m in msgs) and any("missingFn" in m for m in msgs), proc.stderr


def test_report_loads_cleanly_shows_boxes_and_screenshots(
    small_run: EvalResult, tmp_path: Path
) -> None:
    page = small_run.out_dir / "report.html"
    proc = _chromium(page, tmp_path / "profile-dom", "--virtual-time-budget=5000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_messages(proc.stderr) == []
    visible = re.search(r'data-visible-boxes="(\d+)"', proc.stdout)
    assert visible is not None, "the page's script did not run"
    assert int(visible.group(1)) > 0
    assert int(visible.group(1)) == proc.stdout.count('class="zoom-box"')
    shot = tmp_path / "report.png"
    proc = _chromium(
        page, tmp_path / "profile-shot", "--window-size=1280,1600", f"--screenshot={shot}"
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_learning_page_loads_cleanly_with_every_plot_decoded(tmp_path: Path) -> None:
    from medgym.learning.report import write_learning_report

    est = {"value": 0.4, "low": 0.3, "high": 0.5}
    curve = [{"step": k, "reward": 0.1 * k, "probe_accuracy": 0.3 + 0.01 * k} for k in range(4)]
    results = {
        name: {m: est for m in ("accuracy", "no_tools_accuracy", "blank_image_accuracy")}
        | {"steps": 3, "seconds": 1.0, "curve": curve if name != "warm_start" else []}
        for name in ("warm_start", "label-free", "supervised")
    }
    page = write_learning_report(results, {"goals": {"label_free_gain": 0.0}}, tmp_path / "l.html")
    proc = _chromium(page, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_messages(proc.stderr) == []
    loaded = re.search(r'data-loaded-plots="(\d+)"', proc.stdout)
    assert loaded is not None, "the page's script did not run"
    assert int(loaded.group(1)) == 2 == proc.stdout.count('class="plot"')
