"""Matplotlib figures of a run, returned as base64 PNG strings for inline ``<img>`` tags."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from medgym.errors import DependencyNotInstalled

__all__ = ["ablation_plot", "accuracy_by_group_plot", "entropy_plot", "tool_calls_plot"]


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise DependencyNotInstalled(
            "the report's plots need matplotlib: pip install 'medgym[eval]'"
        ) from e
    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _bars(ax: Any, labels: Sequence[str], ests: Sequence[dict[str, Any]]) -> None:
    values = [e["value"] or 0.0 for e in ests]
    lows, highs = [], []
    for v, e in zip(values, ests, strict=True):
        lows.append(max(0.0, v - (e["low"] if e["low"] is not None else v)))
        highs.append(max(0.0, (e["high"] if e["high"] is not None else v) - v))
    ax.bar(range(len(values)), values, yerr=[lows, highs], capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)


def accuracy_by_group_plot(groups: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One panel per grouping field: accuracy per value with its bootstrap interval."""
    plt = _plt()
    fields = [f for f, vals in groups.items() if vals]
    fig, axes = plt.subplots(1, max(1, len(fields)), figsize=(3.2 * max(1, len(fields)), 3))
    axes = [axes] if len(fields) <= 1 else list(axes)
    for ax, f in zip(axes, fields, strict=False):
        labels = list(groups[f])
        _bars(ax, labels, [groups[f][v] for v in labels])
        ax.set_title(f, fontsize=9)
    axes[0].set_ylabel("accuracy")
    return _png(fig)


def ablation_plot(conditions: dict[str, dict[str, Any]]) -> str:
    """Accuracy of each condition (main and ablations) with intervals."""
    plt = _plt()
    names = [c for c in conditions if "accuracy" in conditions[c]["metrics"]]
    fig, ax = plt.subplots(figsize=(4, 3))
    _bars(ax, names, [conditions[c]["metrics"]["accuracy"] for c in names])
    ax.set_ylabel("accuracy")
    ax.set_title("main run and ablations", fontsize=9)
    return _png(fig)


def entropy_plot(episodes: Sequence[dict[str, Any]]) -> str:
    """Mean token entropy of correct and incorrect episodes (box plot)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    data = [
        [e["mean_entropy"] for e in episodes if e["mean_entropy"] is not None and e["correct"] == c]
        for c in (1.0, 0.0)
    ]
    if any(data):
        ax.boxplot([d or [float("nan")] for d in data])
        ax.set_xticks([1, 2], [f"correct ({len(data[0])})", f"incorrect ({len(data[1])})"])
        ax.set_ylabel("mean token entropy (nats)")
    else:
        ax.text(0.5, 0.5, "no token entropies recorded\n(scripted policies)", ha="center")
        ax.set_axis_off()
    ax.set_title("entropy vs correctness", fontsize=9)
    return _png(fig)


def tool_calls_plot(episodes: Sequence[dict[str, Any]]) -> str:
    """Accuracy and episode count by number of tool calls."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    by: dict[int, list[float]] = {}
    for e in episodes:
        if e["labelled"]:
            by.setdefault(int(e["tool_calls"]), []).append(e["correct"])
    keys = sorted(by)
    if keys:
        ax.bar(range(len(keys)), [sum(by[k]) / len(by[k]) for k in keys], color="#55a868")
        ax.set_xticks(range(len(keys)), [f"{k} (n={len(by[k])})" for k in keys], fontsize=8)
        ax.set_ylim(0, 1.05)
    ax.set_xlabel("tool calls per episode")
    ax.set_ylabel("accuracy")
    ax.set_title("tool calls vs correctness", fontsize=9)
    return _png(fig)
