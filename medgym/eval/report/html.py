"""The self-contained static HTML report: tables, inline plots, the trajectory viewer, filters.

Everything is inline (CSS, JavaScript, PNGs as data URIs), so the file opens offline.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from medgym.core.trajectory import Group, read_groups
from medgym.errors import DatasetError
from medgym.eval.report import plots
from medgym.eval.report.viewer import episode_html

__all__ = ["build_report", "load_run"]

logger = logging.getLogger(__name__)

HEADLINE = (
    "accuracy", "closed_accuracy", "open_recall", "open_f1", "judge_accuracy",
    "tool_calls_per_episode", "answer_rate", "evr_fire_rate", "zoom_iou", "pass@1", "pass@n",
    "majority_accuracy", "pseudo_label_accuracy", "pseudo_label_confidence",
)  # fmt: skip

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th:first-child,td:first-child{text-align:left}.ci{color:#777;font-size:.85em}
.episode{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.8em 0}
.episode.correct{border-left:6px solid #55a868}.episode.incorrect{border-left:6px solid #c44e52}
.views{display:flex;flex-wrap:wrap;gap:8px}.view{margin:0}.frame{position:relative;
display:inline-block;line-height:0}.frame img{max-width:224px;image-rendering:pixelated}
.zoom-box{position:absolute;border:2px solid #ff3b30;box-sizing:border-box;pointer-events:none}
.evidence-box{position:absolute;border:2px dashed #34c759;box-sizing:border-box}
.turn{font-family:monospace;white-space:pre-wrap;font-size:.85em;margin:.3em 0}
.obs{color:#555;border-left:3px solid #ddd;padding-left:.5em}.hi{background:#ffd54f}
.hidden{display:none}img.plot{max-width:100%}figure{display:inline-block;vertical-align:top}
"""

_JS = """
(function(){
  function apply(){
    var c=document.getElementById('f-correct').value,g=document.getElementById('f-group').value,
        k=document.getElementById('f-condition').value,shown=0;
    document.querySelectorAll('.episode').forEach(function(e){
      var ok=(c==='all'||e.dataset.correct===c)&&(g==='all'||e.dataset.group===g)&&
             (k==='all'||e.dataset.condition===k);
      e.classList.toggle('hidden',!ok);if(ok){shown++;}
    });
    document.getElementById('f-count').textContent=shown+' shown';
    var boxes=0;document.querySelectorAll('.zoom-box').forEach(function(b){
      if(b.offsetWidth>0&&b.offsetHeight>0){boxes++;}});
    document.body.setAttribute('data-visible-boxes',String(boxes));
  }
  ['f-correct','f-group','f-condition'].forEach(function(id){
    document.getElementById(id).addEventListener('change',apply);});
  window.addEventListener('load',apply);
})();
"""


def load_run(out_dir: str | Path) -> tuple[dict[str, Any], dict[str, list[Group]], dict[str, Any]]:
    """``results.json``, groups per condition and episode records per condition of a run folder.

    Raises:
        medgym.errors.DatasetError: When ``results.json`` is missing or unreadable.
    """
    out = Path(out_dir)
    path = out / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: expected the results.json of a medgym eval run: {e}") from e
    groups: dict[str, list[Group]] = {}
    episodes: dict[str, Any] = {}
    for condition in results.get("conditions", {}):
        tp = out / "trajectories" / f"{condition}.jsonl"
        groups[condition] = list(read_groups(tp)) if tp.exists() else []
        ep = out / "episodes" / f"{condition}.jsonl"
        episodes[condition] = (
            [json.loads(line) for line in ep.read_text(encoding="utf-8").splitlines() if line]
            if ep.exists()
            else []
        )
    return results, groups, episodes


def _fmt(est: dict[str, Any] | None) -> str:
    if not est or est.get("value") is None:
        return "&ndash;"
    v, lo, hi = est["value"], est.get("low"), est.get("high")
    ci = f' <span class="ci">[{lo:.3f}, {hi:.3f}]</span>' if lo is not None else ""
    return f"{v:.3f}{ci}"


def _headline_table(conditions: dict[str, Any]) -> str:
    names = [m for m in HEADLINE if any(m in c["metrics"] for c in conditions.values())]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in conditions)
    rows = "".join(
        f"<tr><td>{html.escape(m)}</td>"
        + "".join(f"<td>{_fmt(c['metrics'].get(m))}</td>" for c in conditions.values())
        + "</tr>"
        for m in names
    )
    counts = "".join(f"<td>{c['samples']} / {c['episodes']}</td>" for c in conditions.values())
    return (
        f'<table id="headline"><tr><th>metric (95% CI)</th>{head}</tr>'
        f"<tr><td>samples / episodes</td>{counts}</tr>{rows}</table>"
    )


def _reliance(results: dict[str, Any]) -> str:
    rel = results.get("image_reliance") or {}
    if not rel:
        return "<p>No blank- or shuffled-image ablation in this run: image reliance unknown.</p>"
    rows, lines = [], []
    for k, v in rel.items():
        kept = "&ndash;" if v["retained"] is None else f"{v['retained']:.0%}"
        rows.append(
            f"<tr><td>{html.escape(k)}</td><td>{v['accuracy']:.3f}</td>"
            f"<td>{v['drop']:+.3f}</td><td>{kept}</td></tr>"
        )
        lines.append(
            f"<li>Image reliance under {html.escape(k)}: accuracy drops by {v['drop']:.3f} "
            f"({kept} of the main accuracy retained).</li>"
        )
    return (
        '<table id="reliance"><tr><th>ablation</th><th>accuracy</th><th>drop vs main</th>'
        f"<th>retained</th></tr>{''.join(rows)}</table><ul>{''.join(lines)}</ul>"
        "<p>A policy that reads the image loses accuracy when the image is blank or belongs to "
        "another sample; a small drop means the score does not come from the pixels.</p>"
    )


def _viewer(groups: dict[str, list[Group]], episodes: dict[str, Any], limit: int) -> str:
    records = {(cond, e["trajectory_id"]): e for cond, eps in episodes.items() for e in eps}
    parts: list[str] = []
    modalities: set[str] = set()
    for cond, gs in groups.items():
        shown = 0
        for g in gs:
            for t in g.trajectories:
                if shown >= limit:
                    break
                rec = records.get((cond, t.id))
                if rec is None:
                    continue
                modalities.add(str(rec.get("modality", "unknown")))
                parts.append(episode_html(g, t, rec, cond))
                shown += 1
    opts = "".join(
        f'<option value="{html.escape(m)}">{html.escape(m)}</option>' for m in sorted(modalities)
    )
    conds = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in groups)
    filters = (
        '<div id="filters">show <select id="f-correct"><option value="all">all</option>'
        '<option value="1">correct</option><option value="0">incorrect</option></select> '
        f'group <select id="f-group"><option value="all">all</option>{opts}</select> '
        f'condition <select id="f-condition"><option value="all">all</option>{conds}</select> '
        '<span id="f-count"></span></div>'
    )
    return filters + "".join(parts)


def build_report(out_dir: str | Path, *, max_episodes: int = 24) -> Path:
    """Write ``report.html`` for a run folder and return its path.

    Args:
        out_dir: A folder written by :func:`medgym.eval.run_eval`.
        max_episodes: Episodes per condition shown in the viewer.
    """
    out = Path(out_dir)
    results, groups, episodes = load_run(out)
    conditions = results["conditions"]
    main = conditions.get("main") or next(iter(conditions.values()))
    main_eps: list[dict[str, Any]] = episodes.get("main") or next(iter(episodes.values()), [])
    cfg = results.get("config", {})
    figs = [
        ("accuracy by group", plots.accuracy_by_group_plot(main["groups"])),
        ("entropy vs correctness", plots.entropy_plot(main_eps)),
        ("tool calls vs correctness", plots.tool_calls_plot(main_eps)),
    ]
    if len(conditions) > 1:
        figs.insert(1, ("ablations", plots.ablation_plot(conditions)))
    fig_html = "".join(
        f'<figure><img class="plot" alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in figs
    )
    title = f"medgym eval: {results.get('policy_name', '?')} on {cfg.get('data', '?')}"
    doc = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>env {html.escape(str(cfg.get('env')))}, n={cfg.get('n')}, "
        f"evr={html.escape(str(cfg.get('evr')))}, "
        f"created {html.escape(results.get('created', ''))}, "
        f"medgym {html.escape(results.get('versions', {}).get('medgym', '?'))}</p>"
        f"<h2>Headline</h2>{_headline_table(conditions)}"
        f"<h2>Image reliance</h2>{_reliance(results)}"
        f"<h2>Plots</h2>{fig_html}"
        f"<h2>Trajectories</h2>{_viewer(groups, episodes, max_episodes)}"
        f"<script>{_JS}</script></body></html>"
    )
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    logger.info("report written to %s", path)
    return path
