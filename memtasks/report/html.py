"""A self-contained HTML page: inline CSS, inline JavaScript for sorting, figures as data URIs.

It opens from disk with no server and loads nothing from the network.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

from memtasks.outputs import write_atomic
from memtasks.report.plots import Figure
from memtasks.report.views import Cell, Table

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2329; margin: 0; background: #f6f7f9; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 28px 48px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 18px; margin: 32px 0 6px; border-bottom: 1px solid #d8dde3; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
nav { font-size: 13px; margin: 6px 0 12px; }
nav a { margin-right: 12px; color: #1f5fa8; text-decoration: none; }
p.desc, p.summary { margin: 4px 0 10px; color: #3d4650; max-width: 980px; }
.wrap { overflow-x: auto; background: #fff; border: 1px solid #d8dde3; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 5px 10px; text-align: left; border-bottom: 1px solid #eceff2; vertical-align: top; }
th, td.num, td.name { white-space: nowrap; }
td.wide { min-width: 160px; max-width: 280px; overflow-wrap: anywhere; }
span.ci { display: block; font-size: 11px; color: #66717c; }
th { background: #eef1f5; position: sticky; top: 0; font-weight: 600; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:after { content: " \\2195"; color: #9aa4ae; font-size: 11px; }
table.sortable th.asc:after { content: " \\25B2"; color: #1d2329; }
table.sortable th.desc:after { content: " \\25BC"; color: #1d2329; }
td.num { font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff4d6; }
tr.difference td { font-weight: 600; border-bottom: 2px solid #cfd6dd; }
ul.notes { margin: 6px 0; font-size: 13px; color: #3d4650; }
ul.warnings { font-size: 13px; color: #8a5a00; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 14px; }
figure { background: #fff; border: 1px solid #d8dde3; border-radius: 6px; margin: 0; padding: 10px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: #3d4650; margin-top: 6px; }
"""

# Sorts by each cell's data-sort value: numbers numerically, text alphabetically.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(ascending ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _sort_value(value: float | str) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return "-1e300" if math.isinf(value) or math.isnan(value) else repr(float(value))
    return str(value)


def _cell_text(cell: Cell) -> str:
    """A rate's interval goes under its value, in small type, so that wide tables fit a laptop screen."""
    value, bracket, interval = cell.text.partition(" [")
    if isinstance(cell.sort, float) and bracket:
        return f'{html.escape(value)}<span class="ci">[{html.escape(interval)}</span>'
    return html.escape(cell.text)


def table_html(table: Table) -> str:
    css = "sortable" if table.sortable else "plain"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = []
    for row, row_class in zip(table.rows, table.row_classes):
        cells = []
        for cell in row:
            kind = "num" if isinstance(cell.sort, (int, float)) else ("wide" if len(cell.text) > 40 else "name")
            title = f' title="{html.escape(cell.note, quote=True)}"' if cell.note else ""
            cells.append(
                f'<td class="{kind}"{title} data-sort="{html.escape(_sort_value(cell.sort), quote=True)}">{_cell_text(cell)}</td>'
            )
        body.append(f'<tr class="{row_class}">' + "".join(cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (
        f'<h2 id="{table.key}">{html.escape(table.title)}</h2>\n'
        f'<p class="desc">{html.escape(table.description)}</p>\n'
        f'<div class="wrap"><table class="{css}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>\n" + (f'<ul class="notes">{notes}</ul>\n' if notes else "")
    )


def figure_html(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (
        f'<figure id="{figure.key}"><h3>{html.escape(figure.title)}</h3>'
        f'<img alt="{html.escape(figure.title, quote=True)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>\n"
    )


def write_html(
    path: Path, title: str, summary: Sequence[str], tables: Sequence[Table], figures: Sequence[Figure], warnings: Sequence[str]
) -> None:
    """The whole report as one HTML file."""
    first = [t for t in tables if not t.after_figures]
    last = [t for t in tables if t.after_figures]
    links = [(t.key, t.title) for t in first] + ([("figures", "Figures")] if figures else [])
    links += [(t.key, t.title) for t in last] + ([("skipped", "Skipped input")] if warnings else [])
    nav = "".join(f'<a href="#{key}">{html.escape(name)}</a>' for key, name in links)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        *(f'<p class="summary">{html.escape(line)}</p>' for line in summary),
        f"<nav>{nav}</nav>",
        *(table_html(t) for t in first),
    ]
    if figures:
        parts.append('<h2 id="figures">Figures</h2><div class="figures">')
        parts += [figure_html(f) for f in figures]
        parts.append("</div>")
    parts += [table_html(t) for t in last]
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f'<h2 id="skipped">Skipped input</h2><ul class="warnings">{items}</ul>')
    parts += [f"<script>{SCRIPT}</script>", "</main></body></html>"]
    write_atomic(path, "\n".join(parts))
