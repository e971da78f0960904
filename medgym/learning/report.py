"""``learning.html``: the learning benchmark's table and curves, one self-contained page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from medgym.eval.report.plots import _plt, _png

__all__ = ["curves_plot", "summary_table", "variants_plot", "write_learning_report"]

_CURVES = (
    ("reward", "mean reward (train batch)"),
    ("probe_accuracy", "accuracy on the probe set (split C prefix)"),
    ("tool_call_rate", "tool-call rate (train batch)"),
    ("pseudo_label_accuracy", "pseudo label vs hidden label (logged only)"),
)
_COLUMNS = (
    ("accuracy", "accuracy"),
    ("no_tools_accuracy", "no tools"),
    ("blank_image_accuracy", "blank image"),
    ("answer_rate", "answer rate"),
    ("tool_calls_per_episode", "tool calls / ep"),
    ("zoom_iou", "zoom IoU"),
)


def curves_plot(results: dict[str, Any]) -> str:
    """Four panels of training curves, one line per variant (base64 PNG)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(_CURVES), figsize=(4.2 * len(_CURVES), 3.2))
    for ax, (key, title) in zip(axes, _CURVES, strict=True):
        for name, r in results.items():
            pts = [
                (row["step"], row[key]) for row in r.get("curve", ()) if row.get(key) is not None
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o" if len(pts) < 15 else None, ms=3, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("GRPO step", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _png(fig)


def variants_plot(results: dict[str, Any]) -> str:
    """Split-C accuracy per variant: with tools, without tools, blank image (95% intervals)."""
    plt = _plt()
    names = list(results)
    keys = (("accuracy", "tools"), ("no_tools_accuracy", "no tools"), ("blank_image_accuracy",
            "blank image"))  # fmt: skip
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.2))
    width = 0.8 / len(keys)
    for j, (key, label) in enumerate(keys):
        xs, vals, lows, highs = [], [], [], []
        for i, name in enumerate(names):
            e = results[name].get(key)
            if e is None:
                continue
            xs.append(i + (j - 1) * width)
            vals.append(e["value"])
            lows.append(max(0.0, e["value"] - e["low"]))
            highs.append(max(0.0, e["high"] - e["value"]))
        ax.bar(xs, vals, width, yerr=[lows, highs], capsize=2, label=label)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on split C")
    ax.legend(fontsize=7)
    return _png(fig)


def _cell(e: dict[str, float] | None) -> str:
    if e is None:
        return "<td>&ndash;</td>"
    return f"<td>{e['value']:.3f} <span class='ci'>[{e['low']:.3f}, {e['high']:.3f}]</span></td>"


def summary_table(results: dict[str, Any]) -> str:
    """The per-variant table (value and 95% interval of every metric, steps, seconds)."""
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in _COLUMNS)
    rows = []
    for name, r in results.items():
        cells = "".join(_cell(r.get(key)) for key, _ in _COLUMNS)
        rows.append(
            f"<tr><td>{html.escape(name)}</td>{cells}<td>{r.get('steps', '')}</td>"
            f"<td>{float(r.get('seconds', 0.0)):.0f}</td></tr>"
        )
    return (
        f"<table><tr><th>variant</th>{head}<th>steps</th><th>seconds</th></tr>"
        f"{''.join(rows)}</table>"
    )


# How many plots decoded (``data-loaded-plots`` on <body>): the headless-browser test reads it.
_LOADED_SCRIPT = (
    "<script>window.addEventListener('load',function(){var n=0;"
    "document.querySelectorAll('img.plot').forEach(function(i){if(i.naturalWidth>0)n++;});"
    "document.body.setAttribute('data-loaded-plots',String(n));});</script>"
)


def write_learning_report(results: dict[str, Any], meta: dict[str, Any], path: Path) -> Path:
    """Write the page (table, goals, curves, variant bars) to ``path``."""
    goals = meta.get("goals", {})
    goal_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in goals.items()
    )
    curves = any(r.get("curve") for r in results.values())
    body = [
        "<h1>medgym learning benchmark</h1>",
        "<p>Split C accuracy with 95% cluster-bootstrap intervals. Every variant starts from the "
        "same warm start and trains for the same number of GRPO steps. The pseudo-label accuracy "
        "compares the reward's pseudo label with the hidden label: logged, never used.</p>",
        summary_table(results),
        f"<img class='plot' alt='accuracy per variant' src='data:image/png;base64,"
        f"{variants_plot(results)}'>",
    ]
    if curves:
        body.append(
            f"<h2>Training curves</h2><img class='plot' alt='training curves' "
            f"src='data:image/png;base64,{curves_plot(results)}'>"
        )
    if goal_rows:
        body.append(f"<h2>Goals</h2><table>{goal_rows}</table>")
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>medgym learning'
        "</title><style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}table{border-collapse:"
        "collapse;margin:.5em 0 1.5em}.ci{color:#777;font-size:.85em}img.plot{max-width:100%}"
        "</style></head><body>" + "".join(body) + _LOADED_SCRIPT + "</body></html>"
    )
    path.write_text(doc, encoding="utf-8")
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
