"""Static HTML reports of evaluation runs (``medgym report DIR``)."""

from __future__ import annotations

from medgym.eval.report.html import build_report, load_run

__all__ = ["build_report", "load_run"]
