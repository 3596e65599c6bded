# ruff: noqa: E501  (the HTML template keeps its lines whole)
"""Render report statistics as one self-contained HTML file (images inline), Markdown or JSON."""

from __future__ import annotations

import base64
import json
from importlib import resources
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from tunesift import __version__
from tunesift.report import plots
from tunesift.report.stats import public

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tunesift report: {{ pool.path }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1060px;
        padding: 24px 28px; color: #1d1d1f; line-height: 1.45; }
 h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #e3e6ea; padding-bottom: 4px;
 margin-top: 1.8em; } h3 { margin-bottom: 0.3em; }
 .sub { color: #5f6368; margin-top: 0; }
 table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.92em; }
 th, td { border: 1px solid #d7dbe0; padding: 4px 9px; text-align: right; }
 th:first-child, td:first-child { text-align: left; } th { background: #f3f5f7; }
 img { max-width: 100%; display: block; margin: 6px 0 12px; }
 .example { border-left: 4px solid #9db4d6; background: #f8f9fb; padding: 6px 10px; margin: 6px 0;
            white-space: pre-wrap; font-size: 0.9em; }
 .example.bottom { border-left-color: #e4a47c; }
 .score { font-weight: 600; color: #3b5b92; } .note { color: #5f6368; font-size: 0.9em; }
 pre { background: #f3f5f7; padding: 8px; overflow-x: auto; font-size: 0.85em; }
 nav a { margin-right: 12px; }
 .map-controls { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; font-size: 0.9em; margin: 6px 0; }
 .swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px; border-radius: 2px; }
 .map-box { position: relative; } #map-canvas { width: 100%; height: 560px; border: 1px solid #d7dbe0; cursor: crosshair; }
 #map-tip { display: none; position: absolute; max-width: 300px; background: #fff; border: 1px solid #9aa3ad;
            padding: 6px 8px; font-size: 0.82em; pointer-events: none; box-shadow: 0 2px 6px rgba(0,0,0,.15); }
 #map-pinned:not(:empty) { border-left: 4px solid #2e86ab; background: #f8f9fb; padding: 6px 10px; margin: 6px 0; font-size: 0.9em; }
 .map-text { white-space: pre-wrap; margin-top: 4px; } .map-scores { color: #3b5b92; }
</style></head><body>
<h1>tunesift report</h1>
<p class="sub">Pool <code>{{ pool.path }}</code>: {{ pool.n }} records; {{ scores|length }} score column(s),
 {{ overlap.labels|length }} selection(s). tunesift {{ version }}; tokens counted with {{ tokenizer }}.</p>
<nav><a href="#summary">Summary</a><a href="#scores">Scores</a><a href="#lengths">Lengths</a>
<a href="#composition">Composition</a><a href="#agreement">Agreement</a><a href="#overlap">Overlap</a>
<a href="#map">Map</a><a href="#examples">Examples</a><a href="#configuration">Configuration</a></nav>

<section id="summary"><h2>Summary: pool vs selections</h2>
<table><tr><th>group</th><th>samples</th><th>instruction tokens (median)</th><th>response tokens (median)</th>
<th>response chars (median)</th><th>with input</th><th>calculation</th></tr>
{% for g in groups %}<tr><td>{{ g.label }}</td><td>{{ g.n }}</td><td>{{ fmt(g.instruction_tokens.median) }}</td>
<td>{{ fmt(g.response_tokens.median) }}</td><td>{{ fmt(g.response_chars.median) }}</td>
<td>{{ pct(g.share_with_input) }}</td><td>{{ pct(g.share_calculation) }}</td></tr>{% endfor %}
</table>
<p class="note">Calculation: {{ definitions.calculation }}.</p>
{% for t in truncation %}<p>{{ t.label }}: {{ pct(t.truncated_frac) }} of the selected samples are longer than the
training length of {{ t.training_length }} tokens (a trainer at that length learns their beginnings only).</p>
{% endfor %}</section>
{% if reasoning_sources %}<section id="sources"><h2>Traces by {{ reasoning_sources.field }}</h2>
<table><tr><th>{{ reasoning_sources.field }}</th><th>rows</th><th>questions</th><th>verified</th>
<th>thinking tokens (median)</th></tr>
{% for r in reasoning_sources.table %}<tr><td>{{ r.source }}</td><td>{{ r.rows }}</td><td>{{ r.questions }}</td>
<td>{{ pct(r.verified_rate) }}</td><td>{{ fmt(r.median_thinking_tokens) }}</td></tr>{% endfor %}</table>
<p class="note">Verified with {{ reasoning_sources.verifier }}, over the rows with a reference.</p></section>{% endif %}
{% if contamination %}<section id="contamination"><h2>Contamination</h2>
<p>Against {{ contamination.against | join(', ') }} ({{ contamination.mode }}, n = {{ contamination.n }}):
{{ contamination.pool }} pool samples hold an evaluation item.</p>
<table><tr><th>selection</th><th>samples</th><th>contaminated</th><th>by set</th></tr>
{% for c in contamination.selections %}<tr><td>{{ c.label }}</td><td>{{ c.n }}</td><td>{{ c.contaminated }}</td>
<td>{% for k, v in c.by_set.items() %}{{ k }} {{ v }} {% endfor %}</td></tr>{% endfor %}</table></section>{% endif %}

<section id="scores"><h2>Scores</h2>
{% for s in scores %}<h3>{{ s.label }} <span class="note">({{ s.field }})</span></h3>
<img src="data:image/png;base64,{{ images['score_' ~ loop.index0] }}" alt="histogram of {{ s.label }}">
<table><tr><th>scored</th><th>skipped</th><th>mean</th><th>median</th><th>25 %</th><th>75 %</th><th>min</th><th>max</th></tr>
<tr><td>{{ s.n_scored }}</td><td>{{ s.n_skipped }}</td><td>{{ fmt(s.summary.mean) }}</td><td>{{ fmt(s.summary.median) }}</td>
<td>{{ fmt(s.summary.p25) }}</td><td>{{ fmt(s.summary.p75) }}</td><td>{{ fmt(s.summary.min) }}</td><td>{{ fmt(s.summary.max) }}</td></tr></table>
{% if s.skipped_by_reason %}<table><tr><th>skip reason</th><th>samples</th></tr>
{% for reason, n in s.skipped_by_reason.items() %}<tr><td>{{ reason }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
{% else %}<p class="note">No sample was skipped.</p>{% endif %}
{% if s.distill %}<h4>Distilled judge: how well the head reproduces its teacher</h4><ul>
{% for fact in s.distill %}<li>{{ fact }}</li>{% endfor %}</ul>{% endif %}
{% for c in s.cuts %}<p class="note">Cut of <b>{{ c.selection }}</b>: {{ fmt(c.cut) }} (its best: {{ fmt(c.top) }}).</p>{% endfor %}
{% if s.tags %}<h4>Most frequent tags (INSTAG): samples with the tag, share of the tagged samples</h4>
<table><tr><th>tag</th>{% for g in s.tags.groups %}<th>{{ g }}</th>{% endfor %}</tr>
<tr><td><i>distinct tags</i></td>{% for g in s.tags.groups %}<td>{{ s.tags.distinct[g] }}</td>{% endfor %}</tr>
{% for row in s.tags.top %}<tr><td>{{ row.tag }}</td>{% for g in s.tags.groups %}<td>{{ row[g].n }} ({{ pct(row[g].share) }})</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
{% endfor %}</section>

<section id="lengths"><h2>Lengths</h2>
<img src="data:image/png;base64,{{ images.lengths }}" alt="length distributions"></section>

<section id="composition"><h2>Composition</h2>
<img src="data:image/png;base64,{{ images.composition }}" alt="composition">
{% if images.sources %}<img src="data:image/png;base64,{{ images.sources }}" alt="source mix">
{% else %}<p class="note">The pool has no source field ({{ source_fields }}).</p>{% endif %}</section>

<section id="agreement"><h2>Agreement between methods (Spearman)</h2>
{% if images.agreement %}<img src="data:image/png;base64,{{ images.agreement }}" alt="Spearman correlations">
<table><tr><th></th>{% for l in agreement.labels %}<th>{{ l }}</th>{% endfor %}</tr>
{% for row in agreement.spearman %}<tr><td>{{ agreement.labels[loop.index0] }}</td>
{% set i = loop.index0 %}{% for v in row %}<td>{{ fmt(v) }} <span class="note">(n={{ agreement.n_common[i][loop.index0] }})</span></td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p class="note">Give two or more score files to compare methods.</p>{% endif %}</section>

<section id="overlap"><h2>Overlap of selections</h2>
{% if images.overlap %}<img src="data:image/png;base64,{{ images.overlap }}" alt="Jaccard overlap">
<table><tr><th>selection</th><th>size</th>{% for l in overlap.labels %}<th>shared with {{ l }}</th>{% endfor %}<th>picked by no other</th></tr>
{% for row in overlap.intersection %}{% set l = overlap.labels[loop.index0] %}<tr><td>{{ l }}</td><td>{{ row[loop.index0] }}</td>
{% for v in row %}<td>{{ v }}</td>{% endfor %}<td>{{ pct(overlap.unique_share[l]) }}</td></tr>{% endfor %}</table>
{% else %}<p class="note">Give two or more selections to compare them.</p>{% endif %}</section>

<section id="map"><h2>Map of the pool</h2>
{% if map %}<div class="map-controls">colour by <select id="map-colour"><option value="selection">selection</option>
{% for s in scores %}<option value="{{ s.label }}">{{ s.label }}</option>{% endfor %}</select>
{% for m in map.selections %}<label><input type="checkbox" class="map-toggle" data-selection="{{ loop.index0 }}" checked>
<span class="swatch" style="background: {{ palette[loop.index0 % palette|length] }}"></span>{{ m.label }}</label>{% endfor %}
<input id="map-search" type="search" placeholder="highlight records containing…" size="28"> <span id="map-found" class="note"></span>
<button id="map-reset" type="button">reset view</button></div>
<div class="map-box"><canvas id="map-canvas"></canvas><div id="map-tip"></div></div>
<div id="map-pinned"></div>
<p class="note">{{ map.method }}{% if map.explained_variance %} ({{ pct(map.explained_variance[0] + map.explained_variance[1]) }} of the variance){% endif %},
{{ map.n_points }} of {{ map.n_pool }} samples drawn (every selected one). Drag to pan, wheel to zoom, hover for a record, click to pin it.
Records are kept to their first {{ map_chars }} characters in this file. Coverage: the share of the {{ map.occupied_cells }} occupied cells
of a {{ map.grid }} x {{ map.grid }} grid that a selection reaches.</p>
<table><tr><th>selection</th><th>samples</th><th>coverage</th></tr>
{% for m in map.selections %}<tr><td>{{ m.label }}</td><td>{{ m.n }}</td><td>{{ pct(m.coverage) }}</td></tr>{% endfor %}</table>
<script type="application/json" id="map-data">{{ map_data }}</script>
<script>{{ map_js }}</script>
{% else %}<p class="note">No map: give a selection (and install all-MiniLM-L6-v2: pip install 'tunesift[embed]').</p>{% endif %}</section>

<section id="examples"><h2>Highest and lowest scored samples</h2>
{% for s in scores %}<h3>{{ s.label }}</h3>
{% for kind in ['top', 'bottom'] %}<p class="note">{{ 'Highest' if kind == 'top' else 'Lowest' }} {{ s[kind]|length }}:</p>
{% for e in s[kind] %}<div class="example {{ kind }}"><span class="score">#{{ e.index }} · {{ s.field }} = {{ fmt(e.score) }}</span>
<b>Instruction:</b> {{ e.instruction }}{% if e.input %}
<b>Input:</b> {{ e.input }}{% endif %}
<b>Response:</b> {{ e.output }}</div>{% endfor %}{% endfor %}{% endfor %}</section>

<section id="configuration"><h2>Configuration of every score</h2>
{% for s in scores %}<h3>{{ s.label }}</h3><pre>{{ s.config | tojson(indent=2) }}</pre>{% endfor %}</section>
</body></html>
"""


#: The map's selection colours (map.js reads them from the map's data).
MAP_PALETTE = ["#d1495b", "#2e86ab", "#edae49", "#00798c", "#8e5572", "#3f7d20", "#f26419", "#5c415d"]


def _map_data(found: dict[str, Any]) -> dict[str, Any]:
    """What map.js draws: coordinates (4 significant digits), pool indices, texts, scores and selections."""
    points = found["_points"]
    xy = points["xy"]
    return {"x": [float(f"{v:.4g}") for v in xy[:, 0]], "y": [float(f"{v:.4g}") for v in xy[:, 1]],
            "index": points["indices"], "text": points["text"], "chars": points["chars"], "palette": MAP_PALETTE,
            "scores": {label: [None if v is None else float(f"{v:.5g}") for v in values]
                       for label, values in points["scores"].items()},
            "selections": [{"label": m["label"], "rows": rows}
                           for m, rows in zip(found["selections"], points["selected"], strict=True)]}  # fmt: skip


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</' can close it, no '<!--' open a comment."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _b64(png: bytes | None) -> str | None:
    return None if png is None else base64.b64encode(png).decode("ascii")


def render_html(stats: dict[str, Any], tokenizer: str) -> str:
    """One HTML page with every figure inline as a data URI: it opens anywhere, offline."""
    images: dict[str, str | None] = {
        f"score_{k}": _b64(plots.score_histogram(s)) for k, s in enumerate(stats["scores"])
    }
    images["lengths"] = _b64(plots.length_boxes(stats["groups"]))
    images["composition"] = _b64(plots.composition_bars(stats["groups"]))
    images["sources"] = _b64(plots.source_mix_bars(stats["groups"]))
    agreement, overlap = stats["agreement"], stats["overlap"]
    images["agreement"] = (
        _b64(plots.matrix_heatmap(agreement["labels"], agreement["spearman"], "Spearman correlation of scores", -1))
        if len(agreement["labels"]) >= 2
        else None
    )
    images["overlap"] = (
        _b64(plots.matrix_heatmap(overlap["labels"], overlap["jaccard"], "Jaccard overlap of selections", 0))
        if len(overlap["labels"]) >= 2
        else None
    )
    env = Environment(autoescape=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True}
    template = env.from_string(_HTML)
    data = public(stats)
    context = {"map": None, **data, "images": images, "version": __version__, "tokenizer": tokenizer, "fmt": _fmt, "pct": _pct,
               "source_fields": "looked for: source, dataset, category", "palette": MAP_PALETTE}  # fmt: skip
    if stats.get("map"):
        points = stats["map"]["_points"]
        context["map_chars"] = points["chars"]
        context["map_data"] = Markup(_script_json(_map_data(stats["map"])))
        context["map_js"] = Markup(resources.files("tunesift.report").joinpath("map.js").read_text(encoding="utf-8"))
    return template.render(context)


def render_markdown(stats: dict[str, Any], tokenizer: str) -> str:
    """A short Markdown summary of the same numbers."""
    data = public(stats)
    lines = [f"# tunesift report: `{data['pool']['path']}` ({data['pool']['n']} records)", ""]
    lines += ["## Pool vs selections", "", "| group | samples | instruction tokens (median) | response tokens "
              "(median) | with input | calculation |", "|---|---|---|---|---|---|"]  # fmt: skip
    for g in data["groups"]:
        lines.append(
            f"| {g['label']} | {g['n']} | {_fmt(g['instruction_tokens']['median'])} | "
            f"{_fmt(g['response_tokens']['median'])} | {_pct(g['share_with_input'])} | {_pct(g['share_calculation'])} |"
        )
    lines += ["", f"Tokens counted with {tokenizer}. Calculation: {data['definitions']['calculation']}.", ""]
    for t in data.get("truncation", []):
        lines += [f"{t['label']}: {_pct(t['truncated_frac'])} of the selected samples are longer than the training "
                  f"length of {t['training_length']} tokens.", ""]  # fmt: skip
    sources = data.get("reasoning_sources")
    if sources:
        lines += [f"## Traces by {sources['field']}", "", f"| {sources['field']} | rows | questions | verified | "
                  "thinking tokens (median) |", "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['source']} | {r['rows']} | {r['questions']} | {_pct(r['verified_rate'])} | "
                  f"{_fmt(r['median_thinking_tokens'])} |" for r in sources["table"]]  # fmt: skip
        lines += ["", f"Verified with {sources['verifier']}, over the rows with a reference.", ""]
    found = data.get("contamination")
    if found:
        lines += [f"Contamination against {', '.join(found['against'])}: {found['pool']} pool samples hold an "
                  "evaluation item."]  # fmt: skip
        for c in found["selections"]:
            sets = ", ".join(f"{k} {v}" for k, v in c["by_set"].items())
            lines.append(f"- {c['label']}: {c['contaminated']} of {c['n']} selected samples contaminated"
                         + (f" ({sets})" if sets else ""))  # fmt: skip
        lines.append("")
    lines += ["## Scores", "", "| score | field | scored | skipped | median | cuts |", "|---|---|---|---|---|---|"]
    for s in data["scores"]:
        cuts = ", ".join(f"{c['selection']}: {_fmt(c['cut'])}" for c in s["cuts"]) or "–"
        skipped = ", ".join(f"{k} {v}" for k, v in s["skipped_by_reason"].items())
        lines.append(
            f"| {s['label']} | {s['field']} | {s['n_scored']} | {s['n_skipped']}{f' ({skipped})' if skipped else ''} "
            f"| {_fmt(s['summary']['median'])} | {cuts} |"
        )
    for s in data["scores"]:
        if s.get("distill"):
            lines += ["", f"## Distilled judge ({s['label']})", "", *(f"- {fact}" for fact in s["distill"])]
        if s.get("tags"):
            groups = s["tags"]["groups"]
            lines += ["", f"## Most frequent tags ({s['label']})", "", "| tag | " + " | ".join(groups) + " |",
                      "|---" * (len(groups) + 1) + "|",
                      "| *distinct tags* | " + " | ".join(str(s["tags"]["distinct"][g]) for g in groups) + " |"]  # fmt: skip
            for row in s["tags"]["top"]:
                cells = " | ".join(f"{row[g]['n']} ({_pct(row[g]['share'])})" for g in groups)
                lines.append(f"| {row['tag']} | {cells} |")
    agreement = data["agreement"]
    if len(agreement["labels"]) >= 2:
        lines += ["", "## Spearman correlation", "", "| | " + " | ".join(agreement["labels"]) + " |",
                  "|---" * (len(agreement["labels"]) + 1) + "|"]  # fmt: skip
        for label, row in zip(agreement["labels"], agreement["spearman"], strict=True):
            lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in row) + " |")
    overlap = data["overlap"]
    if len(overlap["labels"]) >= 2:
        lines += ["", "## Overlap of selections", "", "| selection | size | picked by no other |", "|---|---|---|"]
        for k, label in enumerate(overlap["labels"]):
            lines.append(f"| {label} | {overlap['intersection'][k][k]} | {_pct(overlap['unique_share'][label])} |")
    if data.get("map"):
        m = data["map"]
        lines += ["", "## Map of the pool", "", f"{m['method']}: {m['n_points']} of {m['n_pool']} samples; coverage is "
                  f"the share of the {m['occupied_cells']} occupied cells of a {m['grid']} x {m['grid']} grid a "
                  "selection reaches.", "", "| selection | samples | coverage |", "|---|---|---|"]  # fmt: skip
        for sel in m["selections"]:
            lines.append(f"| {sel['label']} | {sel['n']} | {_pct(sel['coverage'])} |")
    return "\n".join(lines) + "\n"


def render_json(stats: dict[str, Any]) -> str:
    return json.dumps(public(stats), indent=2, allow_nan=False)
