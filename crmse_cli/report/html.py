"""One self-contained HTML page: plotly.js embedded once, every figure drawn from inline JSON.

The page loads nothing from the network (no CDN, no MathJax), so it opens offline and can be
mailed as one file. A small error handler writes JavaScript errors into ``#js-errors`` and a
marker ``#plots-done`` records how many figures Plotly drew, so a headless browser can check it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

import plotly.io as pio
from plotly.offline import get_plotlyjs

from crmse_cli.report.collect import ReportData
from crmse_cli.report.figures import LEAD_FIGURES
from crmse_cli.report.instruments import instruments_section
from crmse_cli.report.lead import failures_data, failures_table, verdict_section
from crmse_cli.report.plotting import FigureSpec, run_color
from crmse_cli.report.rows import MetricRow, metric_table, reference_tconf

PLOT_CONFIG = {"responsive": True, "displaylogo": False, "typesetMath": False}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1400px;
       color: #222; padding: 0 16px; }
h1 { margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 24px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f4; }
td.ref, th.ref { background: #f0f0f0; font-weight: 600; }
.callout { border-left: 6px solid #444; background: #f6f6f6; padding: 10px 16px; margin: 12px 0 20px;
           font-size: 16px; }
.callout b { font-size: 20px; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; } .verdict li { margin: 2px 0; }
.lead { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 0 16px; }
.caption { color: #555; font-size: 14px; margin: 0 0 6px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; }
#js-errors:empty { display: none; }
#js-errors { color: #b00; border: 1px solid #b00; padding: 8px; white-space: pre-wrap; }
"""

ERROR_HANDLER = """
window.onerror = function (msg, src, line, col, err) {
  var box = document.getElementById("js-errors");
  if (box) { box.textContent += "error: " + msg + " (" + src + ":" + line + ")\\n"; }
};
window.addEventListener("unhandledrejection", function (e) {
  var box = document.getElementById("js-errors");
  if (box) { box.textContent += "unhandled rejection: " + e.reason + "\\n"; }
});
"""

RENDER = """
(function () {
  var specs = JSON.parse(document.getElementById("figure-data").textContent);
  var config = JSON.parse(document.getElementById("plot-config").textContent);
  var jobs = specs.map(function (s) {
    return Plotly.newPlot(s.id, s.figure.data, s.figure.layout, config);
  });
  Promise.all(jobs).then(function () {
    var done = document.getElementById("plots-done");
    var drawn = specs.filter(function (s) {
      return document.getElementById(s.id).querySelector("svg.main-svg") !== null;
    }).length;
    done.setAttribute("data-rendered", String(drawn));
    done.textContent = "plots rendered: " + drawn + " of " + specs.length;
  });
})();
"""


def _script_json(data: object) -> str:
    r"""JSON (a JSON text, or data to dump) safe inside a <script> element.

    Every ``<``, ``>`` and ``&`` becomes its ``\u`` escape, so no text from a run name can close
    the element (``</script>``) or switch the HTML parser into its escaped states (``<!--<script>``
    kept every later ``</script>`` from closing it: no plot was drawn). These characters occur in
    JSON only inside strings, where the escape means the same character.
    """
    text = data if isinstance(data, str) else json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fmt(value: object) -> str:
    """A table cell: 4 significant digits for floats, an em dash for missing values."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.4g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def header_table(report: ReportData) -> str:
    """Runs as columns, settings as rows, with the reference column first."""
    keys = [k for k in report.runs[0].settings if any(r.settings.get(k) is not None for r in report.runs)]
    n_ref = next((r.metrics["n_ref_frames"][0] for r in report.runs if "n_ref_frames" in r.metrics), None)
    ref = {
        "run": report.reference_name,
        "dataset": report.dataset,
        "split": report.runs[0].settings.get("split"),
        "replicas": f"{int(n_ref)} frames" if n_ref is not None else None,
    }
    swatch = '<span class="swatch" style="background:{}"></span>'
    head = "".join(
        f"<th>{swatch.format(run_color(report, r))}{html.escape(r.label)}</th>" for r in report.runs
    )
    rows = []
    for k in keys:
        cells = "".join(f"<td>{html.escape(fmt(r.settings.get(k)))}</td>" for r in report.runs)
        rows.append(
            f'<tr><th>{html.escape(k)}</th><td class="ref">{html.escape(fmt(ref.get(k)))}</td>{cells}</tr>'
        )
    return (
        f'<table id="header-table"><thead><tr><th></th>'
        f'<th class="ref">{html.escape(report.reference_name)}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def metrics_table(report: ReportData, rows: list[MetricRow]) -> str:
    """The metrics as an HTML table: one row per metric, the reference, then one column per run."""
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in report.runs)
    body = []
    for row in rows:
        cells = "".join(f'<td data-key="{html.escape(row.key)}">{fmt(v)}</td>' for v in row.values)
        body.append(
            f"<tr><th>{html.escape(row.label)}</th><td>{html.escape(row.unit)}</td>"
            f'<td class="ref">{fmt(row.reference)}</td>{cells}</tr>'
        )
    return (
        f'<table id="metrics-table"><thead><tr><th>metric</th><th>unit</th>'
        f'<th class="ref">{html.escape(report.reference_name)}</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _callout(report: ReportData) -> str:
    tconf = reference_tconf(report)
    temps = sorted(
        {float(t) for r in report.runs if (t := r.settings.get("temperature (K)"))}
    )
    nominal = ", ".join(f"{t:g} K" for t in temps) or "n/a"
    value = f"{tconf:.0f} K" if tconf is not None else "n/a"
    vir = next(
        (
            r.metrics["virial_temperature_ref_K"]
            for r in report.runs
            if "virial_temperature_ref_K" in r.metrics
        ),
        None,
    )
    vir_err = next(
        (
            r.metrics["virial_temperature_ref_K_err"]
            for r in report.runs
            if "virial_temperature_ref_K_err" in r.metrics
        ),
        None,
    )
    virial = ""
    if vir is not None:
        err = f" ± {vir_err[0]:.0f}" if vir_err is not None else ""
        virial = (
            f"; its virial temperature with the reference's own forces: <b>{vir[0]:.0f}{err} K</b> "
            "(the reference temperature is estimator-dependent, ~540-730 K on rMD17; a virial reading far "
            "from T_conf says the frames are not a Boltzmann sample of the surface that labels them)"
        )
    return (
        f'<div class="callout" id="tconf-ref">Configurational temperature of the reference frames '
        f"({html.escape(report.reference_name)}): "
        f"<b>{value}</b>{virial} (sampling temperature of the runs: {nominal}). Samples that match the "
        "reference distribution should show about this T_conf, not the nominal temperature.</div>"
    )


def render(report: ReportData, figures: list[FigureSpec]) -> str:
    """The complete page as a string (a few MB: plotly.js is embedded)."""
    rows = metric_table(report)
    machine = {
        "title": report.title,
        "dataset": report.dataset,
        "version": report.version,
        "runs": [
            {
                "label": r.label,
                "sample_run": r.target.sample.id,
                "evaluate_run": r.evaluate.id,
                "model_run": r.target.model.id if r.target.model else None,
            }
            for r in report.runs
        ],
        "metrics": [
            {"key": m.key, "unit": m.unit, "reference": m.reference, "values": m.values} for m in rows
        ],
        "figures": [f.id for f in figures],
        **failures_data(report),
    }
    t = html.escape(report.title)
    lead = f"""<p class="sub">dataset {html.escape(report.dataset)} · crmse {html.escape(report.version)} ·
generated {html.escape(report.created)}</p>
{verdict_section(report)}
"""
    tail = f"""<h2>Metrics</h2>
<p class="caption">Accuracy from the model runs' test frames; distribution metrics from the evaluate runs.</p>
{metrics_table(report, rows)}
{instruments_section(report.diagnoses)}
<h2>Temperatures</h2>
{_callout(report)}
<h2>Runs</h2>
{header_table(report)}
"""
    n_lead = sum(1 for f in figures[: len(LEAD_FIGURES)] if f.id in LEAD_FIGURES)
    return page(
        t, failures_table(report.failures), figures, machine, lead=lead, lead_figures=n_lead, tail=tail
    )


def page(
    title: str,
    body: str,
    figures: list[FigureSpec],
    machine: Mapping[str, object],
    *,
    lead: str = "",
    lead_figures: int = 0,
    tail: str = "",
) -> str:
    """A complete self-contained page (a few MB: plotly.js is embedded), the shell of every report.

    Order: heading, ``lead``, the first ``lead_figures`` figures (side by side on a wide
    screen), ``body``, the other figures, ``tail``.

    Args:
        title: the page's title and heading, already HTML-escaped.
        body: HTML between the lead figures and the other figures, ending in a newline.
        figures: one section each, in order, drawn into ``plot-<id>``; an empty caption is left out.
        machine: JSON-ready data for readers of the page, in ``#report-data``.
        lead: HTML right under the heading (the answer).
        lead_figures: how many of ``figures`` come right after ``lead``.
        tail: HTML after every figure (reference material).

    Returns:
        The HTML document.
    """
    fig_json = (
        "["
        + ",".join(
            f'{{"id": "plot-{f.id}", "figure": {pio.to_json(f.figure, validate=False, engine="json")}}}'
            for f in figures
        )
        + "]"
    )
    sections = [
        f"<section><h2>{html.escape(f.title)}</h2>"
        + (f'<p class="caption">{html.escape(f.caption)}</p>' if f.caption else "")
        + f'<div class="crmse-plot" id="plot-{f.id}"></div></section>'
        for f in figures
    ]
    first = "".join(sections[:lead_figures])
    first = f'<div class="lead">{first}</div>\n' if first else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<pre id="js-errors"></pre>
<script>{ERROR_HANDLER}</script>
<h1>{title}</h1>
{lead}{first}{body}{"".join(sections[lead_figures:])}
{tail}<p id="plots-done" data-rendered="0" class="caption"></p>
<script type="application/json" id="report-data">{_script_json(machine)}</script>
<script type="application/json" id="plot-config">{_script_json(PLOT_CONFIG)}</script>
<script type="application/json" id="figure-data">{_script_json(fig_json)}</script>
<script type="text/javascript">{get_plotlyjs()}</script>
<script type="text/javascript">{RENDER}</script>
</body></html>
"""
