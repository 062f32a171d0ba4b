"""Markdown and CSV renderings of the report's tables."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from memtasks.outputs import write_atomic
from memtasks.report.plots import Figure
from memtasks.report.views import Table


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(_md_escape(h) for h in table.header) + " |",
        "|" + "|".join("---" for _ in table.header) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(_md_escape(c.text) for c in row) + " |")
    return "\n".join(lines)


def _markdown_section(table: Table) -> list[str]:
    notes = [f"- {note}" for note in table.notes]
    return [f"## {table.title}", "", table.description, "", markdown_table(table), "", *notes, *([""] if notes else [])]


def write_markdown(
    path: Path, title: str, summary: Sequence[str], tables: Sequence[Table], figures: Sequence[Figure], warnings: Sequence[str]
) -> None:
    """One Markdown file: summary, every table with its notes, the figures as relative image links (before the
    tables marked ``after_figures``)."""
    parts = [f"# {title}", "", *summary, ""]
    for table in (t for t in tables if not t.after_figures):
        parts += _markdown_section(table)
    if figures:
        parts += ["## Figures", ""]
        for figure in figures:
            link = Path(os.path.relpath(figure.path, path.parent)).as_posix()
            parts += [f"### {figure.title}", "", figure.caption, "", f"![{figure.title}]({link})", ""]
    for table in (t for t in tables if t.after_figures):
        parts += _markdown_section(table)
    if warnings:
        parts += ["## Skipped input", ""] + [f"- {_md_escape(w)}" for w in warnings] + [""]
    write_atomic(path, "\n".join(parts))


def _csv_value(value):
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def write_csv(folder: Path, tables: Sequence[Table]) -> list[Path]:
    """One tidy CSV per table (``<key>.csv``): a row per model, task, setting and category; empty cell for n/a."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        columns: list[str] = []
        for record in table.records:
            columns += [k for k in record if k not in columns]
        path = folder / f"{table.key}.csv"
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        for record in table.records:
            writer.writerow({k: _csv_value(v) for k, v in record.items()})
        write_atomic(path, text.getvalue())
        written.append(path)
    return written
